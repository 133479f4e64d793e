//! `.creds` files: a user JWT and the user's seed, each between `-----BEGIN ...-----` and
//! `------END ...------` lines, as `nsc` writes them (nats-io/jwt `FormatUserConfig`) and
//! clients read them (`ParseDecoratedJWT`, `ParseDecoratedNKey`).

use super::JwtError;

/// A parsed `.creds` file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub jwt: String,
    /// The user's seed (`SU...`).
    pub seed: String,
}

/// Formats a `.creds` file from a user JWT and the user's seed.
pub fn format(jwt: &str, seed: &str) -> String {
    format!(
        "-----BEGIN NATS USER JWT-----\n{jwt}\n------END NATS USER JWT------\n\n\
         ************************* IMPORTANT *************************\n\
         NKEY Seed printed below can be used to sign and prove identity.\n\
         NKEYs are sensitive and should be treated as secrets.\n\n\
         -----BEGIN USER NKEY SEED-----\n{seed}\n------END USER NKEY SEED------\n\n\
         *************************************************************\n",
        seed = seed.trim()
    )
}

/// Whether `line` is a decoration line: at least three dashes, anything, at least three
/// dashes.
fn is_fence(line: &str) -> bool {
    line.len() >= 6 && line.starts_with("---") && line.ends_with("---")
}

/// The values between fences, in order (Go's `userConfigRE`: fence line, one line of
/// `[\w\-.=]+`, fence line).
fn fenced_values(contents: &str) -> Vec<&str> {
    let lines: Vec<&str> = contents
        .split('\n')
        .map(|line| line.strip_suffix('\r').unwrap_or(line))
        .collect();
    let mut values = Vec::new();
    let mut index = 0;
    while index + 1 < lines.len() {
        let value = lines[index + 1];
        let closed = lines.get(index + 2).is_some_and(|line| is_fence(line));
        let token_like = !value.is_empty()
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'='));
        if is_fence(lines[index].trim_start()) && token_like && closed {
            values.push(value);
            index += 3;
        } else {
            index += 1;
        }
    }
    values
}

/// Reads a `.creds` file: the first fenced value is the JWT, the second the seed. Without
/// fences, as Go: the whole text is the JWT and the seed is the first line starting with a
/// seed prefix.
pub fn parse(contents: &str) -> Result<Credentials, JwtError> {
    let values = fenced_values(contents);
    let jwt = values
        .first()
        .map(|jwt| jwt.to_string())
        .unwrap_or_else(|| contents.trim().to_string());
    let seed = match values.get(1) {
        Some(seed) => seed.to_string(),
        None => contents
            .lines()
            .map(str::trim)
            .find(|line| ["SO", "SA", "SU"].iter().any(|p| line.starts_with(p)))
            .ok_or_else(|| JwtError::Malformed("no nkey seed found".into()))?
            .to_string(),
    };
    if !seed.starts_with("SU") {
        return Err(JwtError::Malformed(
            "doesn't contain an user seed nkey".into(),
        ));
    }
    nkeys::KeyPair::from_seed(&seed).map_err(|e| JwtError::Malformed(format!("seed: {e}")))?;
    Ok(Credentials { jwt, seed })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_formatted_file_parses_back() {
        let user = nkeys::KeyPair::new_user();
        let seed = user.seed().unwrap();
        let text = format("eyJhbGciOi.eyJqdGkiOi.sig-_", &seed);
        let parsed = parse(&text).unwrap();
        assert_eq!(parsed.jwt, "eyJhbGciOi.eyJqdGkiOi.sig-_");
        assert_eq!(parsed.seed, seed);
        // CRLF line ends read the same.
        let parsed = parse(&text.replace('\n', "\r\n")).unwrap();
        assert_eq!(parsed.seed, seed);
    }

    #[test]
    fn files_without_a_user_seed_are_refused() {
        let account = nkeys::KeyPair::new_account();
        let text = format("a.b.c", &account.seed().unwrap());
        assert!(parse(&text).is_err());
        assert!(parse("a.b.c\n").is_err());
    }
}
