//! Distinguished names as nats-server compares them for `verify_and_map` (its
//! `internal/ldap/dn.go`, from go-ldap): a user whose name parses as a DN (`"CN=app,O=acme"`)
//! is the one a client certificate with that subject names, attribute by attribute, in the
//! same order or not.
//!
//! What it owns: [`DistinguishedName::parse`] (go-ldap's `ParseDN`, its quirks included: a
//! second `=` in a value starts a new type, `#` values are refused, a DN ending in `=` has no
//! RDN), [`DistinguishedName::equal`] (`Equal`: the same RDNs in the same order) and
//! [`DistinguishedName::rdns_match`] (`RDNsMatch`: the same RDNs in any order). Values are
//! compared byte for byte, types without regard to ASCII case. A certificate's subject is made
//! one by `crate::tls` (`FromRawCertSubject`'s reading). Touches nothing else.

/// One attribute of an RDN: its type as written (`CN`, `cn`, `2.5.4.3` are different types
/// for go-ldap, which compares types without regard to case only) and its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribute {
    pub kind: Vec<u8>,
    pub value: Vec<u8>,
}

impl Attribute {
    fn equal(&self, other: &Attribute) -> bool {
        self.kind.eq_ignore_ascii_case(&other.kind) && self.value == other.value
    }
}

/// A distinguished name: its relative distinguished names, most specific first (as written:
/// `CN=app,O=acme` is `[[CN=app], [O=acme]]`), each a set of attributes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DistinguishedName {
    pub rdns: Vec<Vec<Attribute>>,
}

impl DistinguishedName {
    /// go-ldap's `ParseDN` (RFC 4514, loosely): `None` where it returns an error. Unescaped
    /// leading and trailing spaces of a type or value are dropped; `\` escapes a special
    /// character or starts two hex digits.
    pub fn parse(text: &str) -> Option<DistinguishedName> {
        let bytes = text.as_bytes();
        let mut rdns = Vec::new();
        let mut rdn = Vec::new();
        let mut buffer = Vec::new();
        let mut kind = Vec::new();
        let mut escaping = false;
        let mut trailing_spaces = 0;
        // The buffer without its unescaped trailing spaces; the buffer is left empty.
        let take = |buffer: &mut Vec<u8>, trailing_spaces: &mut usize| {
            let mut taken = std::mem::take(buffer);
            taken.truncate(taken.len() - *trailing_spaces);
            *trailing_spaces = 0;
            taken
        };
        let mut index = 0;
        while index < bytes.len() {
            let byte = bytes[index];
            if escaping {
                trailing_spaces = 0;
                escaping = false;
                if b" \"#+,;<=>\\".contains(&byte) {
                    buffer.push(byte);
                } else {
                    // Two hex digits for one byte.
                    let pair = bytes.get(index..index + 2)?;
                    let digit = |b: u8| (b as char).to_digit(16);
                    buffer.push((digit(pair[0])? * 16 + digit(pair[1])?) as u8);
                    index += 1;
                }
            } else {
                match byte {
                    b'\\' => {
                        trailing_spaces = 0;
                        escaping = true;
                    }
                    b'=' => {
                        kind = take(&mut buffer, &mut trailing_spaces);
                        // A BER-encoded value (`#...`): go-ldap does not support it.
                        if bytes.get(index + 1) == Some(&b'#') {
                            return None;
                        }
                    }
                    b',' | b'+' => {
                        if kind.is_empty() {
                            return None;
                        }
                        let value = take(&mut buffer, &mut trailing_spaces);
                        rdn.push(Attribute {
                            kind: std::mem::take(&mut kind),
                            value,
                        });
                        if byte == b',' {
                            rdns.push(std::mem::take(&mut rdn));
                        }
                    }
                    b' ' if buffer.is_empty() => {}
                    _ => {
                        if byte == b' ' {
                            trailing_spaces += 1;
                        } else {
                            trailing_spaces = 0;
                        }
                        buffer.push(byte);
                    }
                }
            }
            index += 1;
        }
        if !buffer.is_empty() {
            if kind.is_empty() {
                return None;
            }
            let value = take(&mut buffer, &mut trailing_spaces);
            rdn.push(Attribute { kind, value });
            rdns.push(rdn);
        }
        Some(DistinguishedName { rdns })
    }

    /// go-ldap's `Equal`: as many RDNs, equal position by position.
    pub fn equal(&self, other: &DistinguishedName) -> bool {
        self.rdns.len() == other.rdns.len()
            && self
                .rdns
                .iter()
                .zip(&other.rdns)
                .all(|(mine, theirs)| rdn_equal(mine, theirs))
    }

    /// go-ldap's `RDNsMatch`: as many RDNs, each of this one equal to a distinct one of
    /// `other` (taken greedily, first unmatched first, as go-ldap does).
    pub fn rdns_match(&self, other: &DistinguishedName) -> bool {
        if self.rdns.len() != other.rdns.len() {
            return false;
        }
        let mut matched = vec![false; other.rdns.len()];
        self.rdns.iter().all(|mine| {
            let found = other
                .rdns
                .iter()
                .enumerate()
                .find(|(index, theirs)| !matched[*index] && rdn_equal(mine, theirs));
            match found {
                Some((index, _)) => {
                    matched[index] = true;
                    true
                }
                None => false,
            }
        })
    }
}

/// go-ldap's `RelativeDN.Equal`: as many attributes, each of either found in the other.
fn rdn_equal(mine: &[Attribute], theirs: &[Attribute]) -> bool {
    let has_all = |set: &[Attribute], wanted: &[Attribute]| {
        wanted
            .iter()
            .all(|attribute| set.iter().any(|candidate| candidate.equal(attribute)))
    };
    mine.len() == theirs.len() && has_all(mine, theirs) && has_all(theirs, mine)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attribute(kind: &str, value: &str) -> Attribute {
        Attribute {
            kind: kind.into(),
            value: value.into(),
        }
    }

    fn dn(rdns: &[&[(&str, &str)]]) -> DistinguishedName {
        DistinguishedName {
            rdns: rdns
                .iter()
                .map(|rdn| rdn.iter().map(|(k, v)| attribute(k, v)).collect())
                .collect(),
        }
    }

    #[test]
    fn parses_as_go_ldap_does() {
        let parse = |text| DistinguishedName::parse(text);
        assert_eq!(
            parse("CN=natsring client,OU=tests,O=natsring"),
            Some(dn(&[
                &[("CN", "natsring client")],
                &[("OU", "tests")],
                &[("O", "natsring")]
            ]))
        );
        // Spaces around separators, a multi-valued RDN, escapes (special and hex).
        assert_eq!(
            parse(" CN = a b , OU=x+OU=y,O=a\\,b\\41\\ "),
            Some(dn(&[
                &[("CN", "a b")],
                &[("OU", "x"), ("OU", "y")],
                &[("O", "a,bA ")]
            ]))
        );
        // A plain user name, an email, a type without a value's separator: errors.
        assert_eq!(parse("alice"), None);
        assert_eq!(parse("client@natsring.test"), None);
        assert_eq!(parse(",CN=a"), None);
        assert_eq!(parse("CN=#0403"), None);
        assert_eq!(parse("CN=a\\4"), None);
        assert_eq!(parse("CN=a\\zz"), None);
        // go-ldap's quirks: a second `=` starts a new type; a value-less end has no RDN.
        assert_eq!(parse("CN=a=b"), Some(dn(&[&[("a", "b")]])));
        assert_eq!(parse("CN="), Some(dn(&[])));
        assert_eq!(parse(""), Some(dn(&[])));
    }

    #[test]
    fn equal_by_position_match_in_any_order() {
        let parse = |text| DistinguishedName::parse(text).unwrap();
        let subject = parse("CN=app,OU=x+OU=y,O=acme");
        assert!(subject.equal(&parse("cn=app,ou=y+ou=x,o=acme")));
        assert!(!subject.equal(&parse("O=acme,OU=x+OU=y,CN=app")));
        assert!(subject.rdns_match(&parse("O=acme,OU=x+OU=y,CN=app")));
        assert!(!subject.rdns_match(&parse("O=acme,OU=x,CN=app")));
        assert!(!subject.rdns_match(&parse("O=acme,OU=x+OU=y,CN=App")));
        assert!(!subject.rdns_match(&parse("O=acme,OU=x+OU=y,CN=app,DC=io")));
        // Each RDN is used once.
        let twice = parse("O=a,O=a");
        assert!(!twice.rdns_match(&parse("O=a,O=b")));
        assert!(twice.rdns_match(&parse("O=a,O=a")));
    }
}
