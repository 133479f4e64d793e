//! Token-level tests. `NATS_SERVER_LEX_CASES` is nats-server's own lexer test data
//! (`conf/lex_test.go`, every case): inputs and the tokens, lines and columns nats-server's
//! lexer gives them, so the position rule is pinned on its own examples. nats-server's tests
//! stop comparing at the end of input and after an error, and so does this; its two comment
//! items (start and text) are one `Comment` token here.

use super::TokenKind::{
    ArrayEnd, ArrayStart, Bool, Comment, Datetime, Eof, Error, Float, Include, Integer, Key,
    MapEnd, MapStart, String as Str, Variable,
};
use super::*;

/// A token as the tests compare it: kind, text (lossy), line, column.
type Expected = (TokenKind, &'static str, usize, usize);

/// Every token of `input`, to the end or the first error.
fn tokens(input: &str) -> Vec<(TokenKind, String, usize, usize)> {
    tokens_of_bytes(input.as_bytes())
}

fn tokens_of_bytes(input: &[u8]) -> Vec<(TokenKind, String, usize, usize)> {
    struct Collected(Vec<(TokenKind, String, usize, usize)>);
    impl TokenSink for Collected {
        fn accept(&mut self, token: Token<'_>) -> Result<(), Stopped> {
            let text = String::from_utf8_lossy(token.text).into_owned();
            self.0.push((token.kind, text, token.line, token.column));
            Ok(())
        }
    }
    let mut collected = Collected(Vec::new());
    scan(input, crate::limits::CONF_NESTING_DEPTH_MAX, &mut collected);
    collected.0
}

/// The tokens of `input` before the end of input.
fn tokens_before_end(input: &str) -> Vec<(TokenKind, String, usize, usize)> {
    let mut found = tokens(input);
    assert!(
        matches!(found.last(), Some((Eof | Error, ..))),
        "{input:?} did not end with Eof or Error: {found:?}"
    );
    if let Some((Eof, ..)) = found.last() {
        found.pop();
    }
    found
}

fn assert_tokens(input: &str, expected: &[Expected]) {
    let found = tokens_before_end(input);
    let expected: Vec<(TokenKind, String, usize, usize)> = expected
        .iter()
        .map(|&(kind, text, line, column)| (kind, text.to_string(), line, column))
        .collect();
    assert_eq!(found, expected, "tokens of {input:?}");
}

#[rustfmt::skip]
const NATS_SERVER_LEX_CASES: &[(&str, &[Expected])] = &[
    // TestPlainValue
    ("foo", &[(Key, "foo", 1, 0)]),
    // TestSimpleKeyStringValues
    ("foo = \"bar\"", &[(Key, "foo", 1, 0), (Str, "bar", 1, 7)]),
    // TestSimpleKeyStringValues
    ("foo = 'bar'", &[(Key, "foo", 1, 0), (Str, "bar", 1, 7)]),
    // TestSimpleKeyStringValues
    ("foo='bar'", &[(Key, "foo", 1, 0), (Str, "bar", 1, 5)]),
    // TestSimpleKeyStringValues
    ("foo='bar'\r\n", &[(Key, "foo", 1, 0), (Str, "bar", 1, 5)]),
    // TestSimpleKeyStringValues
    ("foo=\t'bar'\t", &[(Key, "foo", 1, 0), (Str, "bar", 1, 6)]),
    // TestComplexStringValues
    ("foo = 'bar\\r\\n  \\t'", &[(Key, "foo", 1, 0), (Str, "bar\\r\\n  \\t", 1, 7)]),
    // TestStringStartingWithNumber
    ("foo = 3xyz", &[(Key, "foo", 1, 0), (Str, "3xyz", 1, 6)]),
    // TestStringStartingWithNumber
    ("foo = 3xyz,", &[(Key, "foo", 1, 0), (Str, "3xyz", 1, 6)]),
    // TestStringStartingWithNumber
    ("foo = 3xyz;", &[(Key, "foo", 1, 0), (Str, "3xyz", 1, 6)]),
    // TestStringStartingWithNumber
    ("\n        foo = 3xyz\n        ", &[(Key, "foo", 2, 9), (Str, "3xyz", 2, 15)]),
    // TestStringStartingWithNumber
    ("\n        map {\n          foo = 3xyz}\n        ", &[(Key, "map", 2, 9), (MapStart, "", 2, 14), (Key, "foo", 3, 11), (Str, "3xyz", 3, 17), (MapEnd, "", 3, 22)]),
    // TestStringStartingWithNumber
    ("\n        map {\n          foo = 3xyz;\n        }\n        ", &[(Key, "map", 2, 9), (MapStart, "", 2, 14), (Key, "foo", 3, 11), (Str, "3xyz", 3, 17), (MapEnd, "", 4, 10)]),
    // TestStringStartingWithNumber
    ("\n        map {\n          foo = 3xyz,\n          bar = 4wqs\n        }\n        ", &[(Key, "map", 2, 9), (MapStart, "", 2, 14), (Key, "foo", 3, 11), (Str, "3xyz", 3, 17), (Key, "bar", 4, 11), (Str, "4wqs", 4, 17), (MapEnd, "", 5, 10)]),
    // TestBinaryString
    ("foo = \\x65", &[(Key, "foo", 1, 0), (Str, "e", 1, 9)]),
    // TestBinaryStringLatin1: the byte 0xE9, not UTF-8 (shown lossily; see the test below)
    ("foo = \\xe9", &[(Key, "foo", 1, 0), (Str, "\u{FFFD}", 1, 9)]),
    // TestSimpleKeyIntegerValues
    ("foo = 123", &[(Key, "foo", 1, 0), (Integer, "123", 1, 6)]),
    // TestSimpleKeyIntegerValues
    ("foo=123", &[(Key, "foo", 1, 0), (Integer, "123", 1, 4)]),
    // TestSimpleKeyIntegerValues
    ("foo=123\r\n", &[(Key, "foo", 1, 0), (Integer, "123", 1, 4)]),
    // TestSimpleKeyNegativeIntegerValues
    ("foo = -123", &[(Key, "foo", 1, 0), (Integer, "-123", 1, 6)]),
    // TestSimpleKeyNegativeIntegerValues
    ("foo=-123", &[(Key, "foo", 1, 0), (Integer, "-123", 1, 4)]),
    // TestSimpleKeyNegativeIntegerValues
    ("foo=-123\r\n", &[(Key, "foo", 1, 0), (Integer, "-123", 1, 4)]),
    // TestConvenientIntegerValues
    ("foo = 1k", &[(Key, "foo", 1, 0), (Integer, "1k", 1, 6)]),
    // TestConvenientIntegerValues
    ("foo = 1K", &[(Key, "foo", 1, 0), (Integer, "1K", 1, 6)]),
    // TestConvenientIntegerValues
    ("foo = 1m", &[(Key, "foo", 1, 0), (Integer, "1m", 1, 6)]),
    // TestConvenientIntegerValues
    ("foo = 1M", &[(Key, "foo", 1, 0), (Integer, "1M", 1, 6)]),
    // TestConvenientIntegerValues
    ("foo = 1g", &[(Key, "foo", 1, 0), (Integer, "1g", 1, 6)]),
    // TestConvenientIntegerValues
    ("foo = 1G", &[(Key, "foo", 1, 0), (Integer, "1G", 1, 6)]),
    // TestConvenientIntegerValues
    ("foo = 1MB", &[(Key, "foo", 1, 0), (Integer, "1MB", 1, 6)]),
    // TestConvenientIntegerValues
    ("foo = 1Gb", &[(Key, "foo", 1, 0), (Integer, "1Gb", 1, 6)]),
    // TestConvenientIntegerValues
    ("foo = -1m", &[(Key, "foo", 1, 0), (Integer, "-1m", 1, 6)]),
    // TestConvenientIntegerValues
    ("foo = -1GB ", &[(Key, "foo", 1, 0), (Integer, "-1GB", 1, 6)]),
    // TestConvenientIntegerValues
    ("foo = 1Ghz", &[(Key, "foo", 1, 0), (Str, "1Ghz", 1, 6)]),
    // TestConvenientIntegerValues
    ("foo = 2Pie", &[(Key, "foo", 1, 0), (Str, "2Pie", 1, 6)]),
    // TestConvenientIntegerValues
    ("foo = 3Mbs,", &[(Key, "foo", 1, 0), (Str, "3Mbs", 1, 6)]),
    // TestConvenientIntegerValues
    ("foo = 4Gb, bar = 5Gø", &[(Key, "foo", 1, 0), (Integer, "4Gb", 1, 6), (Key, "bar", 1, 11), (Str, "5Gø", 1, 17)]),
    // TestSimpleKeyFloatValues
    ("foo = 22.2", &[(Key, "foo", 1, 0), (Float, "22.2", 1, 6)]),
    // TestSimpleKeyFloatValues
    ("foo=22.2", &[(Key, "foo", 1, 0), (Float, "22.2", 1, 4)]),
    // TestSimpleKeyFloatValues
    ("foo=22.2\r\n", &[(Key, "foo", 1, 0), (Float, "22.2", 1, 4)]),
    // TestBadBinaryStringEndingAfterZeroHexChars
    ("foo = xyz\\x\n", &[(Key, "foo", 1, 0), (Error, "Expected two hexadecimal digits after '\\x', but hit end of line", 2, 1)]),
    // TestBadBinaryStringEndingAfterOneHexChar
    ("foo = xyz\\xF\n", &[(Key, "foo", 1, 0), (Error, "Expected two hexadecimal digits after '\\x', but hit end of line", 2, 1)]),
    // TestBadBinaryStringWithZeroHexChars
    ("foo = \"[\\x]\"", &[(Key, "foo", 1, 0), (Error, "Expected two hexadecimal digits after '\\x', but got ']\"'", 1, 12)]),
    // TestBadBinaryStringWithOneHexChar
    ("foo = \"[\\xe]\"", &[(Key, "foo", 1, 0), (Error, "Expected two hexadecimal digits after '\\x', but got 'e]'", 1, 12)]),
    // TestBadFloatValues
    ("foo = .2", &[(Key, "foo", 1, 0), (Error, "Floats must start with a digit", 1, 7)]),
    // TestBadKey
    (" :foo = 22", &[(Error, "Unexpected key separator ':'", 1, 1)]),
    // TestSimpleKeyBoolValues
    ("foo = true", &[(Key, "foo", 1, 0), (Bool, "true", 1, 6)]),
    // TestSimpleKeyBoolValues
    ("foo=true", &[(Key, "foo", 1, 0), (Bool, "true", 1, 4)]),
    // TestSimpleKeyBoolValues
    ("foo=true\r\n", &[(Key, "foo", 1, 0), (Bool, "true", 1, 4)]),
    // TestComments
    ("# This is a comment", &[(Comment, " This is a comment", 1, 1)]),
    // TestComments
    ("# This is a comment\r\n", &[(Comment, " This is a comment", 1, 1)]),
    // TestComments
    ("// This is a comment\r\n", &[(Comment, " This is a comment", 1, 2)]),
    // TestTopValuesWithComments
    ("foo = 123 // This is a comment", &[(Key, "foo", 1, 0), (Integer, "123", 1, 6), (Comment, " This is a comment", 1, 12)]),
    // TestTopValuesWithComments
    ("foo=123    # This is a comment", &[(Key, "foo", 1, 0), (Integer, "123", 1, 4), (Comment, " This is a comment", 1, 12)]),
    // TestRawString
    ("foo = bar", &[(Key, "foo", 1, 0), (Str, "bar", 1, 6)]),
    // TestRawString
    ("foo = bar' ", &[(Key, "foo", 1, 0), (Str, "bar", 1, 6)]),
    // TestDateValues
    ("foo = 2016-05-04T18:53:41Z", &[(Key, "foo", 1, 0), (Datetime, "2016-05-04T18:53:41Z", 1, 6)]),
    // TestVariableValues
    ("foo = $bar", &[(Key, "foo", 1, 0), (Variable, "bar", 1, 7)]),
    // TestVariableValues
    ("foo =$bar", &[(Key, "foo", 1, 0), (Variable, "bar", 1, 6)]),
    // TestVariableValues
    ("foo $bar", &[(Key, "foo", 1, 0), (Variable, "bar", 1, 5)]),
    // TestArrays
    ("foo = [1, 2, 3, 'bar']", &[(Key, "foo", 1, 0), (ArrayStart, "", 1, 7), (Integer, "1", 1, 7), (Integer, "2", 1, 10), (Integer, "3", 1, 13), (Str, "bar", 1, 17), (ArrayEnd, "", 1, 22)]),
    // TestArrays
    ("foo = [1,2,3,'bar']", &[(Key, "foo", 1, 0), (ArrayStart, "", 1, 7), (Integer, "1", 1, 7), (Integer, "2", 1, 9), (Integer, "3", 1, 11), (Str, "bar", 1, 14), (ArrayEnd, "", 1, 19)]),
    // TestArrays
    ("foo = [1, 2,3,'bar']", &[(Key, "foo", 1, 0), (ArrayStart, "", 1, 7), (Integer, "1", 1, 7), (Integer, "2", 1, 10), (Integer, "3", 1, 12), (Str, "bar", 1, 15), (ArrayEnd, "", 1, 20)]),
    // TestMultilineArrays
    ("\n# top level comment\nfoo = [\n 1, # One\n 2, // Two\n 3 # Three\n 'bar'     ,\n \"bar\"\n]\n", &[(Comment, " top level comment", 2, 2), (Key, "foo", 3, 1), (ArrayStart, "", 3, 8), (Integer, "1", 4, 2), (Comment, " One", 4, 6), (Integer, "2", 5, 2), (Comment, " Two", 5, 7), (Integer, "3", 6, 2), (Comment, " Three", 6, 5), (Str, "bar", 7, 3), (Str, "bar", 8, 3), (ArrayEnd, "", 9, 2)]),
    // TestMultilineArraysNoSep
    ("\n# top level comment\nfoo = [\n 1 // foo\n 2\n 3\n 'bar'\n \"bar\"\n]\n", &[(Comment, " top level comment", 2, 2), (Key, "foo", 3, 1), (ArrayStart, "", 3, 8), (Integer, "1", 4, 2), (Comment, " foo", 4, 6), (Integer, "2", 5, 2), (Integer, "3", 6, 2), (Str, "bar", 7, 3), (Str, "bar", 8, 3), (ArrayEnd, "", 9, 2)]),
    // TestSimpleMap
    ("foo = {ip='127.0.0.1', port = 4242}", &[(Key, "foo", 1, 0), (MapStart, "", 1, 7), (Key, "ip", 1, 7), (Str, "127.0.0.1", 1, 11), (Key, "port", 1, 23), (Integer, "4242", 1, 30), (MapEnd, "", 1, 35)]),
    // TestMultilineMap
    ("\nfoo = {\n  ip = '127.0.0.1' # the IP\n  port= 4242 // the port\n}\n", &[(Key, "foo", 2, 1), (MapStart, "", 2, 8), (Key, "ip", 3, 3), (Str, "127.0.0.1", 3, 9), (Comment, " the IP", 3, 21), (Key, "port", 4, 3), (Integer, "4242", 4, 9), (Comment, " the port", 4, 16), (MapEnd, "", 5, 2)]),
    // TestNestedMaps
    ("\nfoo = {\n  host = {\n    ip = '127.0.0.1'\n    port= 4242\n  }\n}\n", &[(Key, "foo", 2, 1), (MapStart, "", 2, 8), (Key, "host", 3, 3), (MapStart, "", 3, 11), (Key, "ip", 4, 5), (Str, "127.0.0.1", 4, 11), (Key, "port", 5, 5), (Integer, "4242", 5, 11), (MapEnd, "", 6, 4), (MapEnd, "", 7, 2)]),
    // TestQuotedKeys
    ("foo : 123", &[(Key, "foo", 1, 0), (Integer, "123", 1, 6)]),
    // TestQuotedKeys
    ("'foo' : 123", &[(Key, "foo", 1, 1), (Integer, "123", 1, 8)]),
    // TestQuotedKeys
    ("\"foo\" : 123", &[(Key, "foo", 1, 1), (Integer, "123", 1, 8)]),
    // TestQuotedKeysWithSpace
    ("' foo' : 123", &[(Key, " foo", 1, 1), (Integer, "123", 1, 9)]),
    // TestQuotedKeysWithSpace
    ("\" foo\" : 123", &[(Key, " foo", 1, 1), (Integer, "123", 1, 9)]),
    // TestColonKeySep
    ("foo : 123", &[(Key, "foo", 1, 0), (Integer, "123", 1, 6)]),
    // TestColonKeySep
    ("foo:123", &[(Key, "foo", 1, 0), (Integer, "123", 1, 4)]),
    // TestColonKeySep
    ("foo: 123", &[(Key, "foo", 1, 0), (Integer, "123", 1, 5)]),
    // TestColonKeySep
    ("foo:  123\r\n", &[(Key, "foo", 1, 0), (Integer, "123", 1, 6)]),
    // TestWhitespaceKeySep
    ("foo 123", &[(Key, "foo", 1, 0), (Integer, "123", 1, 4)]),
    // TestWhitespaceKeySep
    ("foo 123", &[(Key, "foo", 1, 0), (Integer, "123", 1, 4)]),
    // TestWhitespaceKeySep
    ("foo\t123", &[(Key, "foo", 1, 0), (Integer, "123", 1, 4)]),
    // TestWhitespaceKeySep
    ("foo\t\t123\r\n", &[(Key, "foo", 1, 0), (Integer, "123", 1, 5)]),
    // TestEscapedString
    ("\nfoo  = \\t\nbar  = \\r\nbaz  = \\n\nq    = \\\"\nbs   = \\\\\n", &[(Key, "foo", 2, 1), (Str, "\t", 2, 9), (Key, "bar", 3, 1), (Str, "\r", 3, 9), (Key, "baz", 4, 1), (Str, "\n", 4, 9), (Key, "q", 5, 1), (Str, "\"", 5, 9), (Key, "bs", 6, 1), (Str, "\\", 6, 9)]),
    // TestCompoundStringES
    ("foo = \"\\\\end\"", &[(Key, "foo", 1, 0), (Str, "\\end", 1, 8)]),
    // TestCompoundStringSE
    ("foo = \"start\\\\\"", &[(Key, "foo", 1, 0), (Str, "start\\", 1, 8)]),
    // TestCompoundStringEE
    ("foo = \\x45\\x71", &[(Key, "foo", 1, 0), (Str, "Eq", 1, 12)]),
    // TestCompoundStringSEE
    ("foo = start\\x45\\x71", &[(Key, "foo", 1, 0), (Str, "startEq", 1, 12)]),
    // TestCompoundStringSES
    ("foo = start\\x7Cend", &[(Key, "foo", 1, 0), (Str, "start|end", 1, 9)]),
    // TestCompoundStringEES
    ("foo = \\x3c\\x3eend", &[(Key, "foo", 1, 0), (Str, "<>end", 1, 12)]),
    // TestCompoundStringESE
    ("foo = \\x3cmiddle\\x3E", &[(Key, "foo", 1, 0), (Str, "<middle>", 1, 12)]),
    // TestBadStringEscape
    ("foo = \\y", &[(Key, "foo", 1, 0), (Error, "Invalid escape character 'y'. Only the following escape characters are allowed: \\xXX, \\t, \\n, \\r, \\\", \\\\.", 1, 8)]),
    // TestNonBool
    ("foo = \\\\true", &[(Key, "foo", 1, 0), (Str, "\\true", 1, 7)]),
    // TestNonVariable
    ("foo = \\\\$var", &[(Key, "foo", 1, 0), (Str, "\\$var", 1, 7)]),
    // TestEmptyStringDQ
    ("foo = \"\"", &[(Key, "foo", 1, 0), (Str, "", 1, 7)]),
    // TestEmptyStringSQ
    ("foo = ''", &[(Key, "foo", 1, 0), (Str, "", 1, 7)]),
    // TestNestedWhitespaceMaps
    ("\nfoo  {\n  host  {\n    ip = '127.0.0.1'\n    port= 4242\n  }\n}\n", &[(Key, "foo", 2, 1), (MapStart, "", 2, 7), (Key, "host", 3, 3), (MapStart, "", 3, 10), (Key, "ip", 4, 5), (Str, "127.0.0.1", 4, 11), (Key, "port", 5, 5), (Integer, "4242", 5, 11), (MapEnd, "", 6, 4), (MapEnd, "", 7, 2)]),
    // TestOptionalSemicolons
    ("\nfoo = 123;\nbar = 'baz';\nbaz = 'boo'\nmap {\n id = 1;\n}\n", &[(Key, "foo", 2, 1), (Integer, "123", 2, 7), (Key, "bar", 3, 1), (Str, "baz", 3, 8), (Key, "baz", 4, 1), (Str, "boo", 4, 8), (Key, "map", 5, 1), (MapStart, "", 5, 6), (Key, "id", 6, 2), (Integer, "1", 6, 7), (MapEnd, "", 7, 2)]),
    // TestSemicolonChaining
    ("foo='1'; bar=2.2; baz=true;", &[(Key, "foo", 1, 0), (Str, "1", 1, 5), (Key, "bar", 1, 9), (Float, "2.2", 1, 13), (Key, "baz", 1, 18), (Bool, "true", 1, 22)]),
    // TestNonQuotedStrings
    ("\nfoo = 123\nbar = baz\nbaz=boo\nmap {\n id:one\n id2 : onetwo\n}\nt true\nf false\ntstr \"true\"\ntkey = two\nfkey = five # This should be a string\n", &[(Key, "foo", 2, 1), (Integer, "123", 2, 7), (Key, "bar", 3, 1), (Str, "baz", 3, 7), (Key, "baz", 4, 1), (Str, "boo", 4, 5), (Key, "map", 5, 1), (MapStart, "", 5, 6), (Key, "id", 6, 2), (Str, "one", 6, 5), (Key, "id2", 7, 2), (Str, "onetwo", 7, 8), (MapEnd, "", 8, 2), (Key, "t", 9, 1), (Bool, "true", 9, 3), (Key, "f", 10, 1), (Bool, "false", 10, 3), (Key, "tstr", 11, 1), (Str, "true", 11, 7), (Key, "tkey", 12, 1), (Str, "two", 12, 8), (Key, "fkey", 13, 1), (Str, "five", 13, 8), (Comment, " This should be a string", 13, 14)]),
    // TestDanglingQuotedString
    ("\nlisten: \"localhost:4242\n\nhttp: localhost:8222\n", &[(Key, "listen", 2, 1), (Error, "Unexpected EOF.", 5, 1)]),
    // TestKeyDanglingQuotedString
    ("\nfoo = \"\nlisten: \"\n\nhttp: localhost:8222\n\n\"\n", &[(Key, "foo", 2, 1), (Str, "\nlisten: ", 3, 8), (Key, "http", 5, 1), (Str, "localhost:8222", 5, 7), (Error, "Unexpected EOF.", 8, 1)]),
    // TestDanglingSingleQuotedString
    ("\nlisten: 'localhost:4242\n\nhttp: localhost:8222\n", &[(Key, "listen", 2, 1), (Error, "Unexpected EOF.", 5, 1)]),
    // TestKeyDanglingSingleQuotedString
    ("\nfoo = '\nlisten: '\n\nhttp: localhost:8222\n\n'\n", &[(Key, "foo", 2, 1), (Str, "\nlisten: ", 3, 8), (Key, "http", 5, 1), (Str, "localhost:8222", 5, 7), (Error, "Unexpected EOF.", 8, 1)]),
    // TestMapDanglingBracket
    ("\nlisten = 4222\n\ncluster = {\n\n  foo = bar\n\n", &[(Key, "listen", 2, 1), (Integer, "4222", 2, 10), (Key, "cluster", 4, 1), (MapStart, "", 4, 12), (Key, "foo", 6, 3), (Str, "bar", 6, 9), (Error, "Unexpected EOF processing map.", 8, 1)]),
    // TestBlockDanglingParens
    ("\nlisten = 4222\n\nquote = (\n\n  foo = bar\n\n", &[(Key, "listen", 2, 1), (Integer, "4222", 2, 10), (Key, "quote", 4, 1), (Error, "Unexpected EOF processing block.", 8, 1)]),
    // TestMapQuotedKeys
    ("foo = {'bar' = 4242}", &[(Key, "foo", 1, 0), (MapStart, "", 1, 7), (Key, "bar", 1, 8), (Integer, "4242", 1, 15), (MapEnd, "", 1, 20)]),
    // TestMapQuotedKeys
    ("foo = {\"bar\" = 4242}", &[(Key, "foo", 1, 0), (MapStart, "", 1, 7), (Key, "bar", 1, 8), (Integer, "4242", 1, 15), (MapEnd, "", 1, 20)]),
    // TestSpecialCharsMapQuotedKeys
    ("foo = {'bar-1.2.3' = { port:4242 }}", &[(Key, "foo", 1, 0), (MapStart, "", 1, 7), (Key, "bar-1.2.3", 1, 8), (MapStart, "", 1, 22), (Key, "port", 1, 23), (Integer, "4242", 1, 28), (MapEnd, "", 1, 34), (MapEnd, "", 1, 35)]),
    // TestSpecialCharsMapQuotedKeys
    ("foo = {\"bar-1.2.3\" = { port:4242 }}", &[(Key, "foo", 1, 0), (MapStart, "", 1, 7), (Key, "bar-1.2.3", 1, 8), (MapStart, "", 1, 22), (Key, "port", 1, 23), (Integer, "4242", 1, 28), (MapEnd, "", 1, 34), (MapEnd, "", 1, 35)]),
    // TestDoubleNestedMapsNewLines
    ("\nsystems {\n  allinone {\n    description: \"This is a description.\"\n  }\n}\n", &[(Key, "systems", 2, 1), (MapStart, "", 2, 10), (Key, "allinone", 3, 3), (MapStart, "", 3, 13), (Key, "description", 4, 5), (Str, "This is a description.", 4, 19), (MapEnd, "", 5, 4), (MapEnd, "", 6, 2)]),
    // TestBlockString
    ("\nnumbers (\n1234567890\n)\n", &[(Key, "numbers", 2, 1), (Str, "\n1234567890\n", 4, 10)]),
    // TestBlockStringMultiLine
    ("\nnumbers (\n  12(34)56\n  (\n    7890\n  )\n)\n", &[(Key, "numbers", 2, 1), (Str, "\n  12(34)56\n  (\n    7890\n  )\n", 7, 10)]),
    // TestUnquotedIPAddr
    ("listen: 127.0.0.1:4222", &[(Key, "listen", 1, 0), (Str, "127.0.0.1:4222", 1, 8)]),
    // TestUnquotedIPAddr
    ("listen: 127.0.0.1", &[(Key, "listen", 1, 0), (Str, "127.0.0.1", 1, 8)]),
    // TestUnquotedIPAddr
    ("listen: apcera.me:80", &[(Key, "listen", 1, 0), (Str, "apcera.me:80", 1, 8)]),
    // TestUnquotedIPAddr
    ("listen: nats.io:-1", &[(Key, "listen", 1, 0), (Str, "nats.io:-1", 1, 8)]),
    // TestUnquotedIPAddr
    ("listen: -1", &[(Key, "listen", 1, 0), (Integer, "-1", 1, 8)]),
    // TestUnquotedIPAddr
    ("listen: :-1", &[(Key, "listen", 1, 0), (Str, ":-1", 1, 8)]),
    // TestUnquotedIPAddr
    ("listen = :80", &[(Key, "listen", 1, 0), (Str, ":80", 1, 9)]),
    // TestUnquotedIPAddr
    ("listen = [localhost:4222, localhost:4333]", &[(Key, "listen", 1, 0), (ArrayStart, "", 1, 10), (Str, "localhost:4222", 1, 10), (Str, "localhost:4333", 1, 26), (ArrayEnd, "", 1, 41)]),
    // TestArrayOfMaps
    ("\nauthorization {\n    users = [\n      {user: alice, password: foo}\n      {user: bob,   password: bar}\n    ]\n    timeout: 0.5\n}\n", &[(Key, "authorization", 2, 1), (MapStart, "", 2, 16), (Key, "users", 3, 5), (ArrayStart, "", 3, 14), (MapStart, "", 4, 8), (Key, "user", 4, 8), (Str, "alice", 4, 14), (Key, "password", 4, 21), (Str, "foo", 4, 31), (MapEnd, "", 4, 35), (MapStart, "", 5, 8), (Key, "user", 5, 8), (Str, "bob", 5, 14), (Key, "password", 5, 21), (Str, "bar", 5, 31), (MapEnd, "", 5, 35), (ArrayEnd, "", 6, 6), (Key, "timeout", 7, 5), (Float, "0.5", 7, 14), (MapEnd, "", 8, 2)]),
    // TestInclude
    ("include \"users.conf\"", &[(Include, "users.conf", 1, 9)]),
    // TestInclude
    ("include 'users.conf'", &[(Include, "users.conf", 1, 9)]),
    // TestInclude
    ("include users.conf", &[(Include, "users.conf", 1, 8)]),
    // TestMapInclude
    ("foo { include users.conf }", &[(Key, "foo", 1, 0), (MapStart, "", 1, 5), (Include, "users.conf", 1, 14), (MapEnd, "", 1, 26)]),
    // TestMapInclude
    ("foo {include users.conf}", &[(Key, "foo", 1, 0), (MapStart, "", 1, 5), (Include, "users.conf", 1, 13), (MapEnd, "", 1, 24)]),
    // TestMapInclude
    ("foo { include 'users.conf' }", &[(Key, "foo", 1, 0), (MapStart, "", 1, 5), (Include, "users.conf", 1, 15), (MapEnd, "", 1, 28)]),
    // TestMapInclude
    ("foo { include \"users.conf\"}", &[(Key, "foo", 1, 0), (MapStart, "", 1, 5), (Include, "users.conf", 1, 15), (MapEnd, "", 1, 27)]),
];

#[test]
fn nats_server_lexer_cases() {
    for (input, expected) in NATS_SERVER_LEX_CASES {
        assert_tokens(input, expected);
    }
}

#[test]
fn nats_server_block_string_ended_by_a_nul() {
    // TestBlockStringEOF: the block example with its last newline replaced by a NUL byte.
    assert_tokens(
        "\nnumbers (\n1234567890\n)\0",
        &[(Key, "numbers", 2, 1), (Str, "\n1234567890\n", 4, 10)],
    );
}

#[test]
fn end_of_input_positions_are_nats_servers() {
    // nats-server's parse_test.go `TestParseWithNoValuesAreInvalid`: where a key with no
    // value ends the input (its `config is invalid (:LINE:COLUMN)`).
    let cases: &[(&str, usize, usize)] = &[
        (&"a".repeat(41), 1, 41),
        ("              aaaaaaaaaaaaaaaaaaaaaaaaaaa", 1, 41),
        ("     aaaaaaaaaaaaaaaaaaaaaaaaaaa         ", 1, 41),
        (
            "\n          \t\t# with comments and no spaces to create key values\n         \t\t# \
             is also an invalid config.\n         \t\taaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n\
             \x20                       ",
            5,
            25,
        ),
        ("port", 1, 4),
        ("\nport", 2, 5),
        ("port = '", 1, 8),
        // The escape's decoded text is counted: `"a\t` ends at 11, minus 2.
        ("port = \"a\\t", 1, 9),
        ("port = \"abc\\t", 1, 9),
    ];
    for &(input, line, column) in cases {
        let found = tokens(input);
        let last = found.last().unwrap();
        assert_eq!((last.0, last.2, last.3), (Eof, line, column), "{input:?}");
    }
}

#[test]
fn a_number_that_turns_into_a_string_keeps_the_character_that_did_it() {
    // `2]` is a string, so the array goes on to the next line.
    assert_eq!(
        tokens("a = [1, 2]\nport = 1\n"),
        [
            (Key, "a".into(), 1, 0),
            (ArrayStart, "".into(), 1, 5),
            (Integer, "1".into(), 1, 5),
            (Str, "2]".into(), 1, 8),
            (Str, "port".into(), 2, 1),
            (
                Error,
                "Expected an array value terminator \",\" or an array terminator \"]\", but got \
                 '=' instead."
                    .into(),
                2,
                7
            ),
        ]
    );
    assert_tokens(
        "a = [1, 2 ]",
        &[
            (Key, "a", 1, 0),
            (ArrayStart, "", 1, 5),
            (Integer, "1", 1, 5),
            (Integer, "2", 1, 8),
            (ArrayEnd, "", 1, 11),
        ],
    );
    // A unit suffix steps back first: `1k]` is the string `1k` and the array closes.
    assert_tokens(
        "a = [1k]",
        &[
            (Key, "a", 1, 0),
            (ArrayStart, "", 1, 5),
            (Str, "1k", 1, 5),
            (ArrayEnd, "", 1, 8),
        ],
    );
    // Not a terminator for numbers: `#`, and a backslash is no escape there.
    assert_tokens(
        "a = 4222#c\nb = 1\\x41",
        &[
            (Key, "a", 1, 0),
            (Str, "4222#c", 1, 4),
            (Key, "b", 2, 1),
            (Str, "1\\x41", 2, 5),
        ],
    );
}

#[test]
fn a_unit_suffix_followed_by_more_is_a_string() {
    // nats-server 2.15.1 (commit cdf3fcf4c, after the 2.15.0 source): even a digit after the
    // suffix makes the token a string. Its lex_test.go cases:
    assert_tokens("foo = 0K1abc", &[(Key, "foo", 1, 0), (Str, "0K1abc", 1, 6)]);
    assert_tokens("foo = 5e7bcd", &[(Key, "foo", 1, 0), (Str, "5e7bcd", 1, 6)]);
    assert_tokens(
        "foo = 4e2abc,",
        &[(Key, "foo", 1, 0), (Str, "4e2abc", 1, 6)],
    );
    assert_tokens("foo = 1k5", &[(Key, "foo", 1, 0), (Str, "1k5", 1, 6)]);
    assert_tokens("foo = 1kb0", &[(Key, "foo", 1, 0), (Str, "1kb0", 1, 6)]);
}

#[test]
fn numbers_addresses_and_datetimes() {
    assert_tokens(
        "a = [-12, 1.5, 1.2.3, 127.0.0.1:4222, 2016-05-04T18:53:41Z, 1kib, 2Ghz, 3kbb, -1.2.3 ]",
        &[
            (Key, "a", 1, 0),
            (ArrayStart, "", 1, 5),
            (Integer, "-12", 1, 5),
            (Float, "1.5", 1, 10),
            (Str, "1.2.3", 1, 15),
            (Str, "127.0.0.1:4222", 1, 22),
            (Datetime, "2016-05-04T18:53:41Z", 1, 38),
            (Integer, "1kib", 1, 60),
            (Str, "2Ghz", 1, 66),
            (Integer, "3kbb", 1, 72),
            (Str, "-1.2.3", 1, 78),
            (ArrayEnd, "", 1, 86),
        ],
    );
    // Any Unicode decimal digit starts a number, as in Go.
    assert_tokens("a = ٣", &[(Key, "a", 1, 0), (Integer, "٣", 1, 4)]);
    // A float takes no unit: `k` is left over.
    assert_tokens(
        "a = 1.5k",
        &[
            (Key, "a", 1, 0),
            (Float, "1.5", 1, 4),
            (
                Error,
                "Expected a top-level value to end with a new line, comment or EOF, but got 'k' \
                 instead.",
                1,
                8,
            ),
        ],
    );
}

#[test]
fn booleans_and_variables_are_whole_unquoted_strings() {
    assert_tokens(
        "a = [TRUE, off, Yes, 'no', \"on\", $v, $2a$1$x, true', $v' ]",
        &[
            (Key, "a", 1, 0),
            (ArrayStart, "", 1, 5),
            (Bool, "TRUE", 1, 5),
            (Bool, "off", 1, 11),
            (Bool, "Yes", 1, 16),
            (Str, "no", 1, 22),
            (Str, "on", 1, 28),
            (Variable, "v", 1, 34),
            (Variable, "2a$1$x", 1, 38),
            // A `'` ends an unquoted string, which is then just a string.
            (Str, "true", 1, 46),
            (Str, "$v", 1, 53),
            (ArrayEnd, "", 1, 58),
        ],
    );
}

#[test]
fn block_strings() {
    // At the very end of the input, the `)` and the newline before it stay in the string.
    assert_tokens(
        "a = (\nabc\n)",
        &[(Key, "a", 1, 0), (Str, "\nabc\n)", 3, 5)],
    );
    assert_tokens(
        "a = (\nabc\n)\n",
        &[(Key, "a", 1, 0), (Str, "\nabc\n", 3, 5)],
    );
    // A `)` not alone on its line does not end it.
    assert_tokens(
        "a = (x)\n y)\n)\nb = 1\n",
        &[
            (Key, "a", 1, 0),
            (Str, "x)\n y)\n", 3, 5),
            (Key, "b", 4, 1),
            (Integer, "1", 4, 5),
        ],
    );
    assert_tokens(
        "a = (\nabc\n",
        &[
            (Key, "a", 1, 0),
            (Error, "Unexpected EOF processing block.", 3, 1),
        ],
    );
}

#[test]
fn a_nul_byte_is_an_end_of_input_to_the_lexer() {
    assert_tokens(
        "a=1\0b=2",
        &[
            (Key, "a", 1, 0),
            (Integer, "1", 1, 2),
            (Key, "b", 1, 4),
            (Integer, "2", 1, 6),
        ],
    );
    // Where a key could start, a NUL is a consumed character: an error.
    assert_tokens(
        "a=1\n\0",
        &[
            (Key, "a", 1, 0),
            (Integer, "1", 1, 2),
            (Error, "Unexpected EOF.", 2, 2),
        ],
    );
    // An empty quoted key then a NUL: the scan ends there, quietly.
    assert_eq!(tokens("\"\0garbage ="), [(Eof, "".into(), 1, 1)]);
}

#[test]
fn a_lone_slash_depends_on_where_it_is() {
    // A separator in arrays and maps, a blank after a top-level value, dropped before a map
    // key, an error where a top-level key could start.
    assert_tokens(
        "a = [1 / 2 ]\nm { /k = 1 / x = 2 }\nb = 3 / \n/",
        &[
            (Key, "a", 1, 0),
            (ArrayStart, "", 1, 5),
            (Integer, "1", 1, 5),
            (Integer, "2", 1, 9),
            (ArrayEnd, "", 1, 12),
            (Key, "m", 2, 1),
            (MapStart, "", 2, 4),
            (Key, "k", 2, 6),
            (Integer, "1", 2, 10),
            (Key, "x", 2, 14),
            (Integer, "2", 2, 18),
            (MapEnd, "", 2, 21),
            (Key, "b", 3, 1),
            (Integer, "3", 3, 5),
            (Error, "Unexpected EOF.", 4, 2),
        ],
    );
    assert_tokens(
        "a = [/ 1]",
        &[
            (Key, "a", 1, 0),
            (ArrayStart, "", 1, 5),
            (Error, "Unexpected array value terminator ','.", 1, 6),
        ],
    );
}

#[test]
fn comments_everywhere() {
    assert_tokens(
        "# top\na = [ # in\n 1 // after\n] # end\nm { # key\n b = 2 # value\n}\n{ # block\n c = 3 // x\n}",
        &[
            (Comment, " top", 1, 1),
            (Key, "a", 2, 1),
            (ArrayStart, "", 2, 6),
            (Comment, " in", 2, 8),
            (Integer, "1", 3, 2),
            (Comment, " after", 3, 6),
            (ArrayEnd, "", 4, 2),
            (Comment, " end", 4, 4),
            (Key, "m", 5, 1),
            (MapStart, "", 5, 4),
            (Comment, " key", 5, 6),
            (Key, "b", 6, 2),
            (Integer, "2", 6, 6),
            (Comment, " value", 6, 9),
            (MapEnd, "", 7, 2),
            (Comment, " block", 8, 4),
            (Key, "c", 9, 2),
            (Integer, "3", 9, 6),
            (Comment, " x", 9, 10),
        ],
    );
}

#[test]
fn top_level_braces_hold_top_level_keys() {
    assert_tokens(
        "{ a = 1, { b = 2 }; c = 3 }\nd = 4 }\n}",
        &[
            (Key, "a", 1, 2),
            (Integer, "1", 1, 6),
            (Key, "b", 1, 11),
            (Integer, "2", 1, 15),
            (Key, "c", 1, 20),
            (Integer, "3", 1, 24),
            (Key, "d", 2, 1),
            (Integer, "4", 2, 5),
            // A `}` where a key could start is a key (nats-server accepts it at the end).
            (Key, "}", 3, 1),
        ],
    );
    // An unclosed block ends quietly at the end of input after a newline.
    assert_tokens("{ a = 1\n", &[(Key, "a", 1, 2), (Integer, "1", 1, 6)]);
    assert_tokens(
        "{ a = 1",
        &[
            (Key, "a", 1, 2),
            (Integer, "1", 1, 6),
            (
                Error,
                "Expected a block-level value to end with a new line, comment or EOF, but got \
                 '\0' instead.",
                1,
                7,
            ),
        ],
    );
}

#[test]
fn includes() {
    assert_tokens(
        "include 'a b.conf'\ninclude \"c.conf\"; INCLUDE d.conf\nm { include e.conf }\ninclude= f",
        &[
            (Include, "a b.conf", 1, 9),
            (Include, "c.conf", 2, 10),
            (Include, "d.conf", 2, 27),
            (Key, "m", 3, 1),
            (MapStart, "", 3, 4),
            (Include, "e.conf", 3, 13),
            (MapEnd, "", 3, 21),
            // Followed by a separator (not a blank), `include` is a key.
            (Key, "include", 4, 1),
            (Str, "f", 4, 10),
        ],
    );
    // Followed by a blank, it is the keyword, whatever comes next.
    assert_tokens(
        "include = f",
        &[
            (Include, "=", 1, 8),
            (
                Error,
                "Expected a top-level value to end with a new line, comment or EOF, but got 'f' \
                 instead.",
                1,
                11,
            ),
        ],
    );
    for (input, message, line) in [
        (
            "include [a]",
            "Expected include value but found start of an array",
            1,
        ),
        (
            "include {a}",
            "Expected include value but found start of a map",
            1,
        ),
        (
            "include (a)",
            "Expected include value but found start of a block",
            1,
        ),
        (
            "include 5",
            "Expected include value but found start of a number",
            1,
        ),
        (
            "include -a",
            "Expected include value but found start of a number",
            1,
        ),
        (
            "include \\a",
            "Expected include value but found escape sequence",
            1,
        ),
        ("include \n", "Expected include value but found new line", 2),
        ("include 'abc", "Unexpected EOF in quoted include", 1),
        (
            "include \"abc",
            "Unexpected EOF in double quoted include",
            1,
        ),
    ] {
        let found = tokens(input);
        let last = found.last().unwrap();
        assert_eq!(
            (last.0, last.1.as_str(), last.2),
            (Error, message, line),
            "{input:?}"
        );
    }
}

#[test]
fn every_lexer_error_text() {
    let cases: &[(&str, &str, usize)] = &[
        ("a =\n", "Expected value but found new line", 2),
        ("a = .5", "Floats must start with a digit", 1),
        ("a = -.5", "Floats must start with a digit, not '.'.", 1),
        ("a = -x", "Expected a digit but got 'x'.", 1),
        ("a = 1.x", "Floats must have a digit after the '.', but got 'x' instead.", 1),
        ("a = 1.\n", "Floats must have a digit after the '.', but got '\\n' instead.", 2),
        ("a = 20-01-01", "All ISO8601 dates must be in full Zulu form.", 1),
        ("a = 2016-05-0xT", "Expected digit in ISO8601 datetime, but found 'x' instead.", 1),
        ("a = 2016-05-04X", "Expected 'T' in ISO8601 datetime, but found 'X' instead.", 1),
        (
            "a = \"\\u0041\"",
            "Invalid escape character 'u'. Only the following escape characters are allowed: \
             \\xXX, \\t, \\n, \\r, \\\", \\\\.",
            1,
        ),
        ("a = \"\\xZZ\"", "Expected two hexadecimal digits after '\\x', but got 'ZZ'", 1),
        ("a = abc\\x\n", "Expected two hexadecimal digits after '\\x', but hit end of line", 2),
        ("a = 'abc", "Unexpected EOF.", 1),
        ("a = \"abc", "Unexpected EOF.", 1),
        (" :a = 1", "Unexpected key separator ':'", 1),
        ("a = 1 x", "Expected a top-level value to end with a new line, comment or EOF, but got 'x' instead.", 1),
        ("{ a = 1 x }", "Expected a block-level value to end with a new line, comment or EOF, but got 'x' instead.", 1),
        ("{ { a = 1 } x }", "Expected a block-level to end with a '}', but got 'x' instead.", 1),
        ("a = [,1]", "Unexpected array value terminator ','.", 1),
        ("a = [1 x]", "Expected an array value terminator \",\" or an array terminator \"]\", but got 'x' instead.", 1),
        ("m { = 1 }", "Unexpected key separator '='.", 1),
        ("m { ] }", "Unexpected array end ']' processing map.", 1),
        ("m { a , }", "Unexpected map value terminator \",\".", 1),
        ("m { a = 1 x }", "Expected a map value terminator \",\" or a map terminator \"}\", but got 'x' instead.", 1),
        ("m { abc", "Unexpected EOF processing map key.", 1),
        ("m { 'abc", "Unexpected EOF processing quoted map key.", 1),
        ("m { \"abc", "Unexpected EOF processing double quoted map key.", 1),
        ("m {\n", "Unexpected EOF processing map.", 2),
        ("a 'b", "Unexpected EOF.", 1),
        ("\"a", "Unexpected EOF.", 1),
    ];
    for &(input, message, line) in cases {
        let found = tokens(input);
        let last = found.last().unwrap();
        assert_eq!(
            (last.0, last.1.as_str(), last.2),
            (Error, message, line),
            "{input:?}"
        );
    }
}

#[test]
fn bytes_that_are_not_utf8_are_one_character_each() {
    // Go decodes each bad byte as U+FFFD, one byte wide: columns count bytes.
    assert_eq!(
        tokens_of_bytes(b"a = \xff\xfe\nb = \"x\xc3\"\nc = 1"),
        [
            (Key, "a".into(), 1, 0),
            (Str, "\u{FFFD}\u{FFFD}".into(), 1, 4),
            (Key, "b".into(), 2, 1),
            (Str, "x\u{FFFD}".into(), 2, 6),
            (Key, "c".into(), 3, 1),
            (Integer, "1".into(), 3, 5),
            (Eof, "".into(), 3, 6),
        ]
    );
}

#[test]
fn nesting_is_bounded() {
    let depth = crate::limits::CONF_NESTING_DEPTH_MAX;
    let deepest = format!("a = {}1{}", "[".repeat(depth), " ]".repeat(depth));
    assert_eq!(tokens(&deepest).last().unwrap().0, Eof);
    let too_deep = format!("a = {}1{}", "[".repeat(depth + 1), " ]".repeat(depth + 1));
    let last = tokens(&too_deep).pop().unwrap();
    assert_eq!(last.0, Error);
    assert_eq!(
        last.1,
        format!("Maps, arrays and blocks nested deeper than {depth} levels (natsring's limit).")
    );
    let blocks = format!("{}a = 1", "{".repeat(depth + 1));
    assert_eq!(tokens(&blocks).pop().unwrap().0, Error);
    // Thousands deep: an error, not a stack overflow.
    assert_eq!(tokens(&"{a=[".repeat(10_000)).pop().unwrap().0, Error);
}

#[test]
fn a_sink_can_stop_the_scan() {
    struct FirstOnly(usize);
    impl TokenSink for FirstOnly {
        fn accept(&mut self, _token: Token<'_>) -> Result<(), Stopped> {
            self.0 += 1;
            Err(Stopped)
        }
    }
    let mut sink = FirstOnly(0);
    scan(b"a = 1\nb = 2\n", 8, &mut sink);
    assert_eq!(sink.0, 1);
}
