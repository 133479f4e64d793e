//! A request's query string, read as Go's `url.Values` (the first value of a key) and decoded
//! as nats-server's monitor decodes its parameters (`strconv.ParseBool`, `Atoi`, `ParseUint`,
//! with their error texts).

/// A parameter that could not be decoded: the text nats-server answers with status 400.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryError(pub String);

#[derive(Debug, Default, Clone)]
pub struct Query {
    pairs: Vec<(String, String)>,
}

impl Query {
    pub fn parse(query: Option<&str>) -> Query {
        Query {
            pairs: form_urlencoded::parse(query.unwrap_or_default().as_bytes())
                .map(|(key, value)| (key.into_owned(), value.into_owned()))
                .collect(),
        }
    }

    /// The first value of `key`; empty when absent (as Go's `Values.Get`).
    pub fn get(&self, key: &str) -> &str {
        self.pairs
            .iter()
            .find(|(name, _)| name == key)
            .map_or("", |(_, value)| value.as_str())
    }

    /// `strconv.ParseBool`; absent is false.
    pub fn bool(&self, key: &str) -> Result<bool, QueryError> {
        match self.get(key) {
            "" => Ok(false),
            "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
            "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
            other => Err(QueryError(format!(
                "Error decoding boolean for '{key}': strconv.ParseBool: parsing {}: invalid syntax",
                crate::config::go::quote(other)
            ))),
        }
    }

    /// `strconv.Atoi`; absent is 0.
    pub fn int(&self, key: &str) -> Result<i64, QueryError> {
        let text = self.get(key);
        if text.is_empty() {
            return Ok(0);
        }
        text.parse::<i64>().map_err(|_| {
            QueryError(format!(
                "Error decoding int for '{key}': strconv.Atoi: parsing {}: {}",
                crate::config::go::quote(text),
                syntax_or_range(text)
            ))
        })
    }

    /// `strconv.ParseUint(_, 10, 64)`; absent is 0.
    pub fn uint(&self, key: &str) -> Result<u64, QueryError> {
        let text = self.get(key);
        if text.is_empty() {
            return Ok(0);
        }
        // Go's ParseUint takes no sign.
        let parsed = if text.starts_with('+') {
            None
        } else {
            text.parse::<u64>().ok()
        };
        parsed.ok_or_else(|| {
            QueryError(format!(
                "Error decoding uint64 for '{key}': strconv.ParseUint: parsing {}: {}",
                crate::config::go::quote(text),
                syntax_or_range(text)
            ))
        })
    }
}

/// Go's reason for a number that does not parse: digits that overflow are out of range.
fn syntax_or_range(text: &str) -> &'static str {
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        "value out of range"
    } else {
        "invalid syntax"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_decode_as_go_decodes_them() {
        let query = Query::parse(Some("subs=detail&auth=T&limit=5&cid=x&acc=%24G&limit=9"));
        assert_eq!(query.get("subs"), "detail");
        assert_eq!(query.get("acc"), "$G");
        assert_eq!(query.get("missing"), "");
        assert_eq!(query.bool("auth"), Ok(true));
        assert_eq!(query.int("limit"), Ok(5), "the first value wins");
        assert_eq!(
            query.bool("subs"),
            Err(QueryError(
                "Error decoding boolean for 'subs': strconv.ParseBool: parsing \"detail\": invalid syntax"
                    .into()
            ))
        );
        assert_eq!(
            query.uint("cid"),
            Err(QueryError(
                "Error decoding uint64 for 'cid': strconv.ParseUint: parsing \"x\": invalid syntax"
                    .into()
            ))
        );
        let query = Query::parse(Some("offset=99999999999999999999"));
        assert!(query
            .int("offset")
            .unwrap_err()
            .0
            .ends_with("value out of range"));
    }
}
