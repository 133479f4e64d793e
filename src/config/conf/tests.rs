//! Parse-level tests: the tree (values and positions), errors with nats-server's texts,
//! variables, includes, the bounds, and digests.
//!
//! Expected results come from nats-server: its own `conf/parse_test.go` cases, the examples of
//! its documentation, and files run through `nats-server -t` 2.15.1 (the digests in
//! `NATS_SERVER_DIGESTS` are what it printed). The real binary is not run here.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::json;

use super::*;

fn no_environment(_name: &str) -> Option<String> {
    None
}

/// The environment the digest files were checked with.
fn probe_environment(name: &str) -> Option<String> {
    let value = match name {
        "P_ENV" => "4222",
        "ADMIN_PASS" => "a",
        "CLIENT_PASS" => "b",
        "SERVICE_PASS" => "c",
        "OTHER_PASS" => "d",
        _ => return None,
    };
    Some(value.to_string())
}

/// No environment; the file system.
fn quiet_sources() -> Sources<'static> {
    Sources {
        environment: &no_environment,
        read_file: &read_file_from_disk,
    }
}

fn parse(text: &str) -> Map {
    parse_str_with_env(text, &no_environment)
        .unwrap_or_else(|error| panic!("{text:?} did not parse: {error}"))
}

fn parse_error(text: &str) -> String {
    match parse_str_with_env(text, &no_environment) {
        Ok(map) => panic!("{text:?} parsed: {map:?}"),
        Err(error) => error.to_string(),
    }
}

/// A tree as plain JSON, with types kept apart: an integer is a JSON integer, a float a JSON
/// float (so `2` and `2.0` differ), a datetime `{"datetime": text}`.
fn plain(value: &Value) -> serde_json::Value {
    match value {
        Value::Integer(number) => json!(number),
        Value::Float(number) => json!(number),
        Value::Bool(truth) => json!(truth),
        Value::String(text) => json!(text),
        Value::Datetime(text) => json!({ "datetime": text }),
        Value::Array(items) => items.iter().map(|item| plain(&item.value)).collect(),
        Value::Map(map) => plain_map(map),
    }
}

fn plain_map(map: &Map) -> serde_json::Value {
    let entries: serde_json::Map<String, serde_json::Value> = map
        .iter()
        .map(|(key, item)| (key.to_string(), plain(&item.value)))
        .collect();
    serde_json::Value::Object(entries)
}

fn tree(text: &str) -> serde_json::Value {
    plain_map(&parse(text))
}

fn position_of(map: &Map, key: &str) -> (usize, usize) {
    let item = map
        .get(key)
        .unwrap_or_else(|| panic!("no {key:?} in {map:?}"));
    (item.position.line, item.position.column)
}

/// A directory under the system's temporary directory, removed when dropped.
struct TemporaryDirectory(PathBuf);

impl TemporaryDirectory {
    fn new() -> TemporaryDirectory {
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "natsring-conf-test-{}-{}",
            std::process::id(),
            COUNT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).unwrap();
        TemporaryDirectory(path)
    }

    fn write(&self, relative: &str, text: &str) -> PathBuf {
        let path = self.0.join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        path
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TemporaryDirectory {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn parse_file_quietly(path: &Path) -> Result<Map, ConfError> {
    parse_file_with_env(path, &no_environment)
}

// ---- nats-server's conf/parse_test.go ----

#[test]
fn simple_top_level() {
    assert_eq!(
        tree("foo='1'; bar=2.2; baz=true; boo=22"),
        json!({"foo": "1", "bar": 2.2, "baz": true, "boo": 22})
    );
}

#[test]
fn booleans_in_any_case() {
    for text in [
        "foo=true", "foo=TRUE", "foo=yes", "foo=on", "foo=Yes", "foo=oN",
    ] {
        assert_eq!(tree(text), json!({"foo": true}), "{text}");
    }
    for text in ["foo=false", "foo=FALSE", "foo=no", "foo=off", "foo=NO"] {
        assert_eq!(tree(text), json!({"foo": false}), "{text}");
    }
    // Quoted, a boolean word is a string.
    assert_eq!(
        tree("foo='true'; bar=\"off\""),
        json!({"foo": "true", "bar": "off"})
    );
}

#[test]
fn variables_are_block_scoped() {
    assert_eq!(
        tree("\n  index = 22\n  foo = $index\n"),
        json!({"index": 22, "foo": 22})
    );
    assert_eq!(
        tree("\n  index = 22\n  nest {\n    index = 11\n    foo = $index\n  }\n  bar = $index\n"),
        json!({"index": 22, "nest": {"index": 11, "foo": 11}, "bar": 22})
    );
}

#[test]
fn a_missing_variable_is_an_error() {
    assert_eq!(
        parse_error("foo=$index"),
        "variable reference for 'index' on line 1 can not be found"
    );
    assert_eq!(
        parse_error("\n\nport = $"),
        "variable reference for '' on line 3 can not be found"
    );
}

#[test]
fn environment_variables_are_parsed_as_values() {
    let environment = |name: &str| match name {
        "NUMBER" => Some("22".to_string()),
        "WORD" => Some("xyz".to_string()),
        "SIZE_LIKE" => Some("3Gyz".to_string()),
        "QUOTED" => Some("'3xyz'".to_string()),
        "MAP" => Some("{ x = 1, y = $x }".to_string()),
        _ => None,
    };
    let text = "a = $NUMBER\nb = $WORD\nc = $SIZE_LIKE\nd = $QUOTED\ne = $MAP\n";
    let map = parse_str_with_env(text, &environment).unwrap();
    assert_eq!(
        plain_map(&map),
        json!({"a": 22, "b": "xyz", "c": "3Gyz", "d": "3xyz", "e": {"x": 1, "y": 1}})
    );
    // A value from the environment, and all inside it, is where the reference is (a
    // variable's column is its name's, after the `$`).
    let inner = map.get("e").unwrap().value.as_map().unwrap();
    let position = &inner.get("y").unwrap().position;
    assert_eq!((position.line, position.column), (5, 6));
    assert!(!inner.get("x").unwrap().used_variable);
}

#[test]
fn bcrypt_strings_are_not_variables() {
    assert_eq!(
        tree("password: $2a$11$ooo"),
        json!({"password": "$2a$11$ooo"})
    );
}

#[test]
fn unit_suffixes() {
    let text = "\nk = 8k\nkb = 4kb\nki = 3ki\nkib = 4ki\nm = 1m\nmb = 2MB\nmi = 2Mi\nmib = 64MiB\n\
                g = 2g\ngb = 22GB\ngi = 22Gi\ngib = 22GiB\ntb = 22TB\nti = 22Ti\ntib = 22TiB\n\
                pb = 22PB\npi = 22Pi\npib = 22PiB\nt = 2T\np = 1p\ne = 2e\neb = 3EB\n";
    let kibi: i64 = 1024;
    assert_eq!(
        tree(text),
        json!({
            "k": 8000, "kb": 4 * kibi, "ki": 3 * kibi, "kib": 4 * kibi,
            "m": 1_000_000, "mb": 2 * kibi.pow(2), "mi": 2 * kibi.pow(2), "mib": 64 * kibi.pow(2),
            "g": 2_000_000_000i64, "gb": 22 * kibi.pow(3), "gi": 22 * kibi.pow(3),
            "gib": 22 * kibi.pow(3), "tb": 22 * kibi.pow(4), "ti": 22 * kibi.pow(4),
            "tib": 22 * kibi.pow(4), "pb": 22 * kibi.pow(5), "pi": 22 * kibi.pow(5),
            "pib": 22 * kibi.pow(5), "t": 2_000_000_000_000i64, "p": 1_000_000_000_000_000i64,
            "e": 2_000_000_000_000_000_000i64, "eb": 3 * kibi.pow(6),
        })
    );
    // Go's int64 multiplication wraps, and nats-server takes the result.
    assert_eq!(
        tree("a = 10e"),
        json!({"a": 10i64.wrapping_mul(1_000_000_000_000_000_000)})
    );
    assert_eq!(tree("a = -2k"), json!({"a": -2000}));
}

#[test]
fn nats_server_samples() {
    assert_eq!(
        tree("\nfoo  {\n  host {\n    ip   = '127.0.0.1'\n    port = 4242\n  }\n  servers = [ \"a.com\", \"b.com\", \"c.com\"]\n}\n"),
        json!({"foo": {"host": {"ip": "127.0.0.1", "port": 4242}, "servers": ["a.com", "b.com", "c.com"]}})
    );
    let cluster = "\ncluster {\n  port: 4244\n\n  authorization {\n    user: route_user\n    password: top_secret\n    timeout: 1\n  }\n\n  # Routes are actively solicited and connected to from this server.\n  # Other servers can connect to us if they supply the correct credentials\n  # in their routes definitions from above.\n\n  // Test both styles of comments\n\n  routes = [\n    nats-route://foo:bar@apcera.me:4245\n    nats-route://foo:bar@apcera.me:4246\n  ]\n}\n";
    assert_eq!(
        tree(cluster),
        json!({"cluster": {
            "port": 4244,
            "authorization": {"user": "route_user", "password": "top_secret", "timeout": 1},
            "routes": ["nats-route://foo:bar@apcera.me:4245", "nats-route://foo:bar@apcera.me:4246"],
        }})
    );
    assert_eq!(
        tree("\nfoo  {\n  expr = '(true == \"false\")'\n  text = 'This is a multi-line\ntext block.'\n}\n"),
        json!({"foo": {"expr": "(true == \"false\")", "text": "This is a multi-line\ntext block."}})
    );
    assert_eq!(
        tree("\n  array [\n    { abc: 123 }\n    { xyz: \"word\" }\n  ]\n"),
        json!({"array": [{"abc": 123}, {"xyz": "word"}]})
    );
    assert_eq!(
        tree("\n  now = 2016-05-04T18:53:41Z\n  gmt = false\n\n"),
        json!({"now": {"datetime": "2016-05-04T18:53:41Z"}, "gmt": false})
    );
}

/// nats-server's `conf/simple.conf` with its `includes/` directory.
fn nats_server_include_files(directory: &TemporaryDirectory) -> PathBuf {
    directory.write(
        "includes/passwords.conf",
        "# Just foo & bar for testing\nALICE_PASS: $2a$10$UHR6GhotWhpLsKtVP0/i6.Nh9.fuY73cWjLoJjb2sKT8KISBcUW5q\nBOB_PASS: $2a$11$dZM98SpGeI7dCFFGSpt.JObQcix8YHml4TBUZoge9R1uxnMIln5ly\n",
    );
    directory.write(
        "includes/users.conf",
        "# Users configuration\n\ninclude ./passwords.conf;\n\nusers = [\n  {user: alice, password: $ALICE_PASS}\n  {user: bob,   password: $BOB_PASS}\n]\n",
    );
    directory.write(
        "simple.conf",
        "listen: 127.0.0.1:4222\n\nauthorization {\n  include 'includes/users.conf' # Pull in from file\n  timeout: 0.5\n}\n",
    )
}

#[test]
fn includes_merge_into_the_current_map() {
    let directory = TemporaryDirectory::new();
    let simple = nats_server_include_files(&directory);
    let map = parse_file_quietly(&simple).unwrap();
    let alice = "$2a$10$UHR6GhotWhpLsKtVP0/i6.Nh9.fuY73cWjLoJjb2sKT8KISBcUW5q";
    let bob = "$2a$11$dZM98SpGeI7dCFFGSpt.JObQcix8YHml4TBUZoge9R1uxnMIln5ly";
    assert_eq!(
        plain_map(&map),
        json!({
            "listen": "127.0.0.1:4222",
            "authorization": {
                "ALICE_PASS": alice,
                "BOB_PASS": bob,
                "users": [{"user": "alice", "password": alice}, {"user": "bob", "password": bob}],
                "timeout": 0.5,
            }
        })
    );
    // Each entry keeps the file and position it was written at.
    let authorization = map.get("authorization").unwrap().value.as_map().unwrap();
    let alice_pass = authorization.get("ALICE_PASS").unwrap();
    let passwords = directory.path().join("includes/passwords.conf");
    assert_eq!(
        alice_pass.position.file.as_deref(),
        Some(passwords.as_path())
    );
    assert_eq!(
        (alice_pass.position.line, alice_pass.position.column),
        (2, 1)
    );
    // Referenced by users.conf after the include: used.
    assert!(alice_pass.used_variable);
    let users = authorization.get("users").unwrap();
    let users_conf = directory.path().join("includes/users.conf");
    assert_eq!(users.position.file.as_deref(), Some(users_conf.as_path()));
    assert_eq!((users.position.line, users.position.column), (5, 1));
}

#[test]
fn included_variables_keep_their_positions() {
    // parse_test.go `TestIncludeVariablesWithChecks`.
    let directory = TemporaryDirectory::new();
    nats_server_include_files(&directory);
    let main = directory.write(
        "main.conf",
        "\nauthorization {\n\n  include \"./includes/passwords.conf\"\n\n  CAROL_PASS: foo\n\n  users = [\n   {user: alice, password: $ALICE_PASS}\n   {user: bob,   password: $BOB_PASS}\n   {user: carol, password: $CAROL_PASS}\n  ]\n}\n",
    );
    let map = parse_file_quietly(&main).unwrap();
    let authorization = map.get("authorization").unwrap().value.as_map().unwrap();
    assert_eq!(position_of(authorization, "ALICE_PASS"), (2, 1));
    assert_eq!(position_of(authorization, "BOB_PASS"), (3, 1));
    assert_eq!(position_of(authorization, "CAROL_PASS"), (6, 3));
    for key in ["ALICE_PASS", "BOB_PASS", "CAROL_PASS"] {
        assert!(authorization.get(key).unwrap().used_variable, "{key}");
    }
    assert!(!authorization.get("users").unwrap().used_variable);
}

#[test]
fn lexer_loops_end() {
    // parse_test.go `TestParserNoInfiniteLoop`.
    for text in ["A@@Føøøø?˛ø:{øøøø˙˙", "include \"9/�"] {
        let error = parse_error(text);
        assert!(error.contains("Unexpected EOF"), "{text:?}: {error}");
    }
}

#[test]
fn a_key_without_a_value_is_invalid() {
    // parse_test.go `TestParseWithNoValuesAreInvalid`.
    let cases = [
        ("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa".to_string(), "config is invalid (:1:41)"),
        ("              aaaaaaaaaaaaaaaaaaaaaaaaaaa".to_string(), "config is invalid (:1:41)"),
        ("     aaaaaaaaaaaaaaaaaaaaaaaaaaa         ".to_string(), "config is invalid (:1:41)"),
        (
            "\n          \t\t# with comments and no spaces to create key values\n         \t\t# is \
             also an invalid config.\n         \t\taaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n  \
             \x20                     "
                .to_string(),
            "config is invalid (:5:25)",
        ),
        (
            "\n                        a,a,a,a,a,a,a,a,a,a,a\n                        ".to_string(),
            "config is invalid (:3:25)",
        ),
    ];
    for (text, message) in cases {
        assert_eq!(parse_error(&text), message, "{text:?}");
    }
}

#[test]
fn empty_configurations_and_trailing_braces_are_valid() {
    // parse_test.go `TestParseWithNoValuesEmptyConfigsAreValid` and
    // `TestParseWithTrailingBracketsAreValid`.
    for text in [
        "",
        "\n\n\n                        ",
        "\n                        # just comments with no values\n                        # is still valid.\n                        ",
        "{}",
        "\n                        {\n                        # comments in the body\n                        }\n                        ",
        "\n                        accounts { users = [{}]}\n                        }\n                        ",
        "{\n                          accounts { users = [{}]}\n                        }\n                        ",
    ] {
        parse(text);
    }
    assert_eq!(
        tree("\n accounts { users = [{}]}\n }\n "),
        json!({"accounts": {"users": [{}]}})
    );
}

#[test]
fn errors_in_includes_name_the_include() {
    // parse_test.go `TestParseWithNoValuesIncludes`.
    let directory = TemporaryDirectory::new();
    directory.write("foo.conf", "");
    directory.write("quux.conf", "?????????????");
    let main = directory.write(
        "nats.conf",
        "# includes\n\t\t\taccounts {\n  foo { include 'foo.conf'}\n  bar { users = [{user = \"bar\"}] }\n  quux { include 'quux.conf'}\n}\n",
    );
    let error = parse_file_quietly(&main).unwrap_err();
    let quux = directory.path().join("quux.conf");
    assert_eq!(
        error.to_string(),
        format!(
            "error parsing include file 'quux.conf', config is invalid ({}:1:13)",
            quux.display()
        )
    );
    directory.write("bar.conf", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    let main = directory.write(
        "nats.conf",
        "accounts {\n  foo { include 'foo.conf'}\n  bar { include 'bar.conf'}\n}\n",
    );
    let error = parse_file_quietly(&main).unwrap_err();
    assert!(error.to_string().ends_with("bar.conf:1:34)"), "{error}");
}

#[test]
fn json_like_files() {
    // parse_test.go `TestJSONParseCompat`.
    assert_eq!(
        tree("\n {\n   \"http_port\": 8227,\n   \"port\": 4227,\n   \"write_deadline\": \"1h\",\n   \"cluster\": {\n     \"port\": 6222,\n     \"routes\": [\n       \"nats://127.0.0.1:4222\",\n       \"nats://127.0.0.1:4223\",\n       \"nats://127.0.0.1:4224\"\n     ]\n   }\n }\n "),
        json!({
            "http_port": 8227, "port": 4227, "write_deadline": "1h",
            "cluster": {"port": 6222, "routes": ["nats://127.0.0.1:4222", "nats://127.0.0.1:4223", "nats://127.0.0.1:4224"]},
        })
    );
    assert_eq!(
        tree("{\n  \"jetstream\": {\n    \"store_dir\": \"/tmp/nats\"\n    \"max_mem\": 1000000,\n  },\n  \"port\": 4222,\n  \"server_name\": \"nats1\"\n}\n"),
        json!({"jetstream": {"store_dir": "/tmp/nats", "max_mem": 1_000_000}, "port": 4222, "server_name": "nats1"})
    );
    assert_eq!(tree("{}"), json!({}));
    assert_eq!(tree("\n {\n }\n "), json!({}));
    let directory = TemporaryDirectory::new();
    directory.write("foo.json", "{ \"users\": [ {\"user\": \"foo\"} ] }");
    directory.write("bar.json", "{\n  \"users\": [ {\"user\": \"bar\"} ]\n}");
    directory.write("quux.json", "{}");
    let main = directory.write(
        "nats.conf",
        "\naccounts {\n  foo  { include 'foo.json'  }\n  bar  { include 'bar.json'  }\n  quux { include 'quux.json' }\n}\n",
    );
    assert_eq!(
        plain_map(&parse_file_quietly(&main).unwrap()),
        json!({"accounts": {"foo": {"users": [{"user": "foo"}]}, "bar": {"users": [{"user": "bar"}]}, "quux": {}}})
    );
}

#[test]
fn top_level_blocks() {
    // parse_test.go `TestBlocks`.
    for text in [
        "{ listen: 0.0.0.0:4222 }",
        "{\n\t\t\t\tlisten: 0.0.0.0:4222\n\t\t\t }",
        "\n\t\t\t{\n\t\t\t\tlisten: 0.0.0.0:4222\n\t\t\t}\n\t\t\t# wibble\n\t\t\t",
        "\n\t\t\t{\n\t\t\t\t{\n\t\t\t\t\tlisten: 0.0.0.0:4222 // random comment\n\t\t\t\t}\n\t\t\t\t# wibble1\n\t\t\t}\n\t\t\t# wibble2\n\t\t\t",
    ] {
        assert_eq!(tree(text), json!({"listen": "0.0.0.0:4222"}), "{text:?}");
    }
    assert_eq!(
        tree("\n\t\t\t{\n\t\t\t  \"debug\":              False\n\t\t\t  \"prof_port\":          8221\n\t\t\t  \"server_name\":        \"aws-useast2-natscj1-1\"\n\t\t\t}\n\t\t\t"),
        json!({"debug": false, "prof_port": 8221, "server_name": "aws-useast2-natscj1-1"})
    );
    assert_eq!(
        tree("\n\t\t\t{\n\t\t\t  \"debug\":              False\n\t\t\t  \"server_name\":        \"gcp-asianortheast3-natscj1-1\"\n\n\t\t\t  # Profile port specification.\n\t\t\t  \"prof_port\":          8221\n\t\t\t}\n\t\t\t"),
        json!({"debug": false, "prof_port": 8221, "server_name": "gcp-asianortheast3-natscj1-1"})
    );
}

#[test]
fn nats_server_digest_cases() {
    // parse_test.go `TestParseDigest`: the digests are nats-server's own.
    // (main file, included files (name, text), digest)
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);
    let cases: &[Case] = &[
        ("foo = bar", &[], "sha256:226e49e13d16e5e8aa0d62e58cd63361bf097d3e2b2444aa3044334628a2e8de"),
        ("# Comments and whitespace have no effect\n foo = bar\n ", &[], "sha256:226e49e13d16e5e8aa0d62e58cd63361bf097d3e2b2444aa3044334628a2e8de"),
        ("# Syntax changes have no effect\n 'foo': 'bar'\n ", &[], "sha256:226e49e13d16e5e8aa0d62e58cd63361bf097d3e2b2444aa3044334628a2e8de"),
        ("# Syntax changes have no effect\n { 'foo': 'bar' }\n ", &[], "sha256:226e49e13d16e5e8aa0d62e58cd63361bf097d3e2b2444aa3044334628a2e8de"),
        ("# substitutions\n BAR_USERS = { users = [ {user = \"bar\"} ]}\n hello = 'world'\n accounts {\n   QUUX_USERS = [ { user: quux }]\n   bar = $BAR_USERS\n   quux = { users = $QUUX_USERS }\n }\n very { nested { env { VAR = 'NESTED', quux = $VAR }}}\n ", &[], "sha256:bddb282343249c26d3edcef9bfaa9d2711505fc67210380e871405ba394a9186"),
        ("# substitutions, same as previous one without env vars.\n hello = 'world'\n accounts {\n   bar  = { users = [ { user = \"bar\" } ]}\n   quux = { users = [ { user: quux   } ]}\n }\n very { nested { env { quux = 'NESTED' }}}\n ", &[], "sha256:34f8faf3f269fe7509edc4742f20c8c4a7ad51fe21f8b361764314b533ac3ab5"),
        ("# substitutions\n BAR_USERS = { users = [ {user = \"foo\"} ]}\n bar = $BAR_USERS\n accounts {\n   users = $BAR_USERS\n }\n ", &[], "sha256:b0e2ba0b8ec2cb75681b5c5d61789cda0c9942c2f9fe16cdb7f6703364485360"),
        ("# substitutions\n bar = { users = [ {user = \"foo\"} ]}\n accounts {\n   users = { users = [ {user = \"foo\"} ]}\n }\n ", &[], "sha256:f5d943b4ed22b80c6199203f8a7eaa8eb68ef7b2d46ef6b1b26f05e21f8beb13"),
        ("# includes\n accounts {\n   foo { include 'foo.conf'}\n   bar { users = [{user = \"bar\"}] }\n   quux { include 'quux.conf'}\n }\n ", &[("foo.conf", " users = [{user = \"foo\"}]"), ("quux.conf", " users = [{user = \"quux\"}]")], "sha256:e72d70c91b64b0f880f86decb95ec2600cbdcf8bdcd2355fce5ebc54a84a77e9"),
        ("# includes\n accounts {\n   foo { include 'foo.conf'}\n   bar { include 'bar.conf'}\n   quux { include 'quux.conf'}\n }\n ", &[("foo.conf", " users = [{user = \"foo\"}]"), ("bar.conf", " users = [{user = \"bar\"}]"), ("quux.conf", " users = [{user = \"quux\"}]")], "sha256:e72d70c91b64b0f880f86decb95ec2600cbdcf8bdcd2355fce5ebc54a84a77e9"),
    ];
    for &(text, includes, expected) in cases {
        let directory = TemporaryDirectory::new();
        for &(name, contents) in includes {
            directory.write(name, contents);
        }
        let main = directory.write("nats.conf", text);
        let map = parse_file_quietly(&main).unwrap();
        assert_eq!(digest(&map), expected, "{text:?}");
    }
}

// ---- Digests nats-server -t 2.15.1 printed for these files. ----

/// (name, file, digest): every file of the hand check that nats-server called valid and that
/// includes nothing; parsed with [`probe_environment`].
#[rustfmt::skip]
const NATS_SERVER_DIGESTS: &[(&str, &str, &str)] = &[
    ("d/bcrypt", "pid_file = $2a$10$abcdefghijklmnopqrstuv\n", "sha256:d38ffbc5e180752bd4316fa7b58020fad341a50e8615989dd6008644baedbb39"),
    ("d/block", "v = (\n  line one\n  (nested)\n)\npid_file = $v\n", "sha256:daea1a6ca1e21dac5b7ab781111bfef0a10c145072dcc1cdfa13ecc6b9f45dd1"),
    ("d/blockeof", "pid_file = (\nabc\n)", "sha256:97f717d485583fc9d81a093ca64038fbc98d11bcd5a5e9a863d44c8012310cdf"),
    ("d/colon", "port: 4222\nserver_name: foo\n", "sha256:fbeaa422a7782d0c18d1f6a4199b7acd491c18e0bd9c3e3f152e110f39be3363"),
    ("d/comments", "# c\n// d\nport = 1 # e\nmax_payload = 2 // f\n", "sha256:e2c12b8fde0f145a64ab3f4d6802f1dbae1332e3b2937205f6203b227f5a1b44"),
    ("d/controls", "v = \"\\x01\\x08\\x0c\\x1f\\x7f\"\npid_file = $v\n", "sha256:74f699cea6eefef2f25a0b756bd5f9dc9771d39a7266cf454c4032ef16367380"),
    ("d/crlf", "port = 1\r\nmax_payload = 2\r\n", "sha256:e2c12b8fde0f145a64ab3f4d6802f1dbae1332e3b2937205f6203b227f5a1b44"),
    ("d/dup", "port = 1\nport = 2\n", "sha256:29a5ae873b3f1bed4254554caa2bff9d978ce26cc227d7b267faa3b41f2c75a2"),
    ("d/env_value", "port = $P_ENV\n", "sha256:797533ebd0dfba7d34a0f9337ecf147e442871f48ddfd07ed751575a5737267e"),
    ("d/escapes", "server_name = \"a\\tb\\nc\\r\\\"d\\\\e\\x41\\x3c\"\n", "sha256:3f02d1ad78c5f479eddb25bd27a91674546a6c77bc50b445bae7b00678c05c55"),
    ("d/html", "v = '<script>&amp;</script> \u{2028} \u{2029}'\npid_file = $v\n", "sha256:769f9f665ac1c7b10953e2c7d1fb35823889b4e70349ac1616d422bd8248a5a3"),
    ("d/json", "{\n  \"port\": 4222,\n  \"server_name\": \"a<b>&c\",\n  \"debug\": true\n}\n", "sha256:391b4d51fdaa3f7a8441458abeb735e14b1836744e375125315dd9bb4e8461f9"),
    ("d/nul", "port = 1\0\nmax_payload = 2\n", "sha256:e2c12b8fde0f145a64ab3f4d6802f1dbae1332e3b2937205f6203b227f5a1b44"),
    ("d/quotedkeys", "'port' = 1\n\"server_name\" = \"x\"\n", "sha256:ec3527f737dc2b15c2beaf64e5b3b697c1f784b893ac3255172ed25bc009676e"),
    ("d/semi", "port = 4222; server_name = 'x'; max_payload = 1MB,\n", "sha256:c51f6f8d9cae1e43e6ef9a29b0fb809d8d6f75a9f4d847d29c71fb8f67ff893a"),
    ("d/simple", "port = 4222\n", "sha256:797533ebd0dfba7d34a0f9337ecf147e442871f48ddfd07ed751575a5737267e"),
    ("d/space", "port 4222\nserver_name foo\n", "sha256:fbeaa422a7782d0c18d1f6a4199b7acd491c18e0bd9c3e3f152e110f39be3363"),
    ("d/tabs", "\tport\t=\t1\t\n", "sha256:5b27b68e52c25859a76c94f378c31d5a499ca677a46b38fb5f58ded229b59650"),
    ("d/topbraces", "{ port = 1 }\n}\n", "sha256:5b27b68e52c25859a76c94f378c31d5a499ca677a46b38fb5f58ded229b59650"),
    ("d/unicode", "v = 'héllo wörld ✓ 😀'\npid_file = $v\n", "sha256:1494ecaaf0a324b6c3099d75555449715427bd166bc1c46a4a3ab466a2d99931"),
    ("d/unknownsuffix", "port = 1\nmax_payload = 1kbb\n", "sha256:5b27b68e52c25859a76c94f378c31d5a499ca677a46b38fb5f58ded229b59650"),
    ("e/arraynl", "v = [\n 1\n 2 # c\n 'three' // d\n]\nport = $v\nport = 4222\n", "sha256:aff257b0c923f56e4516861d9322ec9b7eae628725d312ff7d05004fe34c0634"),
    ("e/arrslash", "v = [1 / 2 ]\nport = $v\nport = 4222\n", "sha256:b87b4789ee2dae09e0d55cb2231a73c57e9ae6b86564bb30ab1e79860eab7275"),
    ("e/bcrypt", "v = $2a$11$ooo\nport = $v\nport = 4222\n", "sha256:a08be3e3bfaca1683930011b3af6901aa337896b86116d21b03d276966afe555"),
    ("e/bigint", "v = [9223372036854775807, -9223372036854775808, 0, -0]\nport = $v\nport = 4222\n", "sha256:01087de14e8c008eb16ba16ae94445cf1b9394933e10cb255f01bf30b36940dc"),
    ("e/block", "v = (\n  multi\n  line (x)\n)\nport = $v\nport = 4222\n", "sha256:a7a0ee52278c2a1a1f46ec7baf539a0ca1847d116a261db70647980cf7ea8dd5"),
    ("e/bools", "v = [true, FALSE, yes, No, on, OFF, 'true', \"no\"]\nport = $v\nport = 4222\n", "sha256:be36214762c4d6e97b5c96f9f6468e7c6262630c3d2902e62dd9db7dd878e2c3"),
    ("e/comments_in", "v = { a = 1 # x\n b = 2 // y\n # z\n}\nport = $v\nport = 4222\n", "sha256:4936a4e5fc86dea1e38684fa755c00846530fe2202c57433b4188ef2150a6692"),
    ("e/controls", "v = \"\\x00\\x01\\x08\\x09\\x0a\\x0b\\x0c\\x0d\\x1b\\x1f\\x7f\"\nport = $v\nport = 4222\n", "sha256:226b5397e02a77baf763915320804b4493f76a9eeb39e793f7a5fb351afffcb2"),
    ("e/datetime", "v = [2016-05-04T18:53:41Z, 2024-02-29T00:00:00Z]\nport = $v\nport = 4222\n", "sha256:649460dd03a858273ff39113c5140812bd5e54c2e1e83b163e4800a28efc4194"),
    ("e/deep", "v = [[[[[[[[[[[[[[[[[[[[1 ] ] ] ] ] ] ] ] ] ] ] ] ] ] ] ] ] ] ] ]\nport = $v\nport = 4222\n", "sha256:5aecea5a4cef3c0ab7070bed8825a3071d161f209137352d28d7d4e64e682187"),
    ("e/dq_multiline", "v = \"first\nsecond\"\nport = $v\nport = 4222\n", "sha256:9bab63a4938995ed465dd1d23d979d4f812379e4e97d2af4dffa8ffd3b2eb322"),
    ("e/dqkey_map", "v = { \"a b\" = 1, 'c' : 2, \"\" = 3 }\nport = $v\nport = 4222\n", "sha256:25e55a479b8acff84b4765d5deea55fc854375fd827321c3c31f0a9c53befc9d"),
    ("e/dupkeys", "v = { a = 1, a = 2, b = { c = 1 }, b = { d = 2 } }\nport = $v\nport = 4222\n", "sha256:4422a3f760be1000d48478f3809ee2d93d4f772343361ec0a2c37e73df608709"),
    ("e/emptyarr", "v = { a = [], b = {}, c = '', d = \"\" }\nport = $v\nport = 4222\n", "sha256:cb5bcf3b49692ecf1e98a7b559b867b05fdeb31fb9825ef97465ab218d3bcb64"),
    ("e/escaped_nl", "v = \"line1\\nline2\\rline3\"\nport = $v\nport = 4222\n", "sha256:7891e6744a681f8ea03335830a09d2bd6d6acc4e3735428f3c87c458ccab0037"),
    ("e/floats", "v = [0.5, 1.0, 0.0000001, 0.000001, 100000000000000000000000.0, 100000000000000000000.0, -0.0, 3.14159265358979323846, 123456789.123456789, 0.1]\nport = $v\nport = 4222\n", "sha256:cad02be35d66c4d4c386c01eb095c8527b3b19431628e91306041af6e7fb2b0b"),
    ("e/html", "v = { a = '<>&', b = \"\\x3c\\x3e\\x26\", c = '\u{2028}\u{2029}' }\nport = $v\nport = 4222\n", "sha256:6861da9b6bff2dc59adb35ffd8a64c3f4b861c76a2cc3faa5771aaa8c9e94d0f"),
    ("e/ips", "v = [127.0.0.1:4222, 1.2.3, 10.0.0.1, 1.2.3.4-5 ]\nport = $v\nport = 4222\n", "sha256:83e86b3469a913c7b44375452582a0921077f70635be6eea9ca5146f0830721c"),
    ("e/keycolon", "v = { port: 1, x: { y: z } }\nport = $v\nport = 4222\n", "sha256:2b1e5aabe1d8f682cb0aade5cee93ff68c132d26f038bc2cb4fd92dd751a2960"),
    ("e/keys_sorted", "v = { b = 1, a = 2, B = 3, A = 4, _ = 5, 'é' = 6, '1' = 7, 'a b' = 8 }\nport = $v\nport = 4222\n", "sha256:14c1d7bea7a5e03cb9ac967b6aa3fe10a9d1a0b90bb11919adb032b1cb948427"),
    ("e/mixed", "v = [1, 'a', true, 1.5, 2016-05-04T18:53:41Z, [ ], { }, {x = [1 ]} ]\nport = $v\nport = 4222\n", "sha256:6f855b40e8fcaac247173055ef4767a14c35f73fc0104048ceec330367b99739"),
    ("e/negfloat", "v = -1.5\nport = $v\nport = 4222\n", "sha256:a5bfbd46e0ba8bd40bada1c300bd478e013ee2995a2d2d69c342004b519d0efb"),
    ("e/nestedmaps", "v = { a { b { c { d = [ {e = 1}, {f = [2, {g = h}]} ] } } } }\nport = $v\nport = 4222\n", "sha256:8386ad3c46489432a582a936847187756f9a9aa209a1aa5051f9b936f54e5fe4"),
    ("e/semis", "v = { a = 1; b = 2, c = 3\n d = 4 }\nport = $v\nport = 4222\n", "sha256:a7d335b1be92d78eb899fcc1e53f522dee26719e591f6c97fd34f910fbc98202"),
    ("e/slash", "v = { /a = 1 }\nport = $v\nport = 4222\n", "sha256:223a923c5c8cbff903a389f10e8a47ff72bcd5b41595ebf8cc287aac0b8f4334"),
    ("e/sq_multiline", "v = 'first\nsecond'\nport = $v\nport = 4222\n", "sha256:9bab63a4938995ed465dd1d23d979d4f812379e4e97d2af4dffa8ffd3b2eb322"),
    ("e/stringnum", "v = [3xyz, 4Gb, 5Gø, 1ab, 2k]\nport = $v\nport = 4222\n", "sha256:3d796de7122c323355276199973b5ecd5974340e48e18585468f855bbbae54f8"),
    ("e/strings", "v = { a = \"x\\ty\", b = 'single \\t raw', c = unquoted, d = \"\\\\\\\"\", e = \"\\x41\\x42\", f = 'with \"dq\"', g = \"with 'sq'\" }\nport = $v\nport = 4222\n", "sha256:2d11fdd27f74a7e09f999da5d99bde338dce1c130ba4c3b2d6183c4748c0f06f"),
    ("e/unicode", "v = 'héllo ✓ 😀  '\nport = $v\nport = 4222\n", "sha256:f94ecad3d9ccb9cacab615b15eb1eb72be0a4780c4669f2e79ccb0aaa63a9dca"),
    ("e/units", "v = [1k, 1kb, 1KiB, 2m, 2MB, 3g, 3gi, 4t, 4TB, 5p, 5pib, 6e, 1eb, -2k, 10e, 9e, 8eb, 1K, 1Mi ]\nport = $v\nport = 4222\n", "sha256:844858d6a08cb58da0c1bd4fea39e0eaeef595a19f4b2222afcbe96f45193ac4"),
    ("e/var_in_map", "v = { a = 1, b = $a, c { d = $a, a = 2, e = $a } }\nport = $v\nport = 4222\n", "sha256:38f25cbfe03fa57a783fd283cbee701e16d0e875722b7a6a0454616d5aca6f53"),
    ("docs/accounts", "v {\naccounts: {\n    A: {\n        users: [\n            {user: a, password: a}\n        ]\n        exports: [\n            {stream: puba.>}\n            {service: pubq.>}\n            {stream: b.>, accounts: [B]}\n            {service: q.b, accounts: [B]}\n        ]\n    },\n    B: {\n        users: [\n            {user: b, password: b}\n        ]\n        imports: [\n            {stream: {account: A, subject: b.>}}\n            {service: {account: A, subject: q.b}}\n        ]\n    }\n    C: {\n        users: [\n            {user: c, password: c}\n        ]\n        imports: [\n            {stream: {account: A, subject: puba.>}, prefix: from_a}\n            {service: {account: A, subject: pubq.C}, to: Q}\n        ]\n    }\n}\n}\nport = $v\nport = 4222\n", "sha256:7a915366e0415068723e9e2c21cf9dd89272484ae8e375c5114e8a682c41624b"),
    ("docs/accounts_no_auth_user", "v {\naccounts: {\n    A: {\n        users: [\n            {user: a, password: a}\n        ]\n    },\n    B: {\n        users: [\n            {user: b, password: b}\n        ]\n    }\n}\nno_auth_user: a\n}\nport = $v\nport = 4222\n", "sha256:6a71c1f3ff0c24fdb5014a4f1781aae648a955885fad58965e64d8360ed6453e"),
    ("docs/authorization_allow_deny", "v {\nauthorization: {\n    users = [\n        {\n            user: admin\n            password: secret\n            permissions: {\n                publish: \">\"\n                subscribe: \">\"\n            }\n        }\n        { \n            user: test\n            password: test\n            permissions: {\n                publish: {\n                    deny: \">\"\n                }, \n                subscribe: {\n                    allow: \"client.>\"\n                }\n            }\n        }\n    ]\n}\n}\nport = $v\nport = 4222\n", "sha256:35fdea192c1a3197b09bc406fb56826f449b9e2d03b337b705e446d68a7452fb"),
    ("docs/authorization_allow_responses", "v {\nauthorization: {\n    users: [\n        { user: a, password: a },\n        { user: b, password: b, permissions: {subscribe: \"q\", allow_responses: true } },\n        { user: c, password: c, permissions: {subscribe: \"q\", allow_responses: { max: 5, expires: \"1m\" } } }\n    ]\n}\n}\nport = $v\nport = 4222\n", "sha256:5690bdf283993b4aa0a8236e5d81f26cee3e264d2c038907e6778e27e4a33890"),
    ("docs/authorization_variables", "v {\nauthorization {\n  default_permissions = {\n    publish = \"SANDBOX.*\"\n    subscribe = [\"PUBLIC.>\", \"_INBOX.>\"]\n  }\n  ADMIN = {\n    publish = \">\"\n    subscribe = \">\"\n  }\n  REQUESTOR = {\n    publish = [\"req.a\", \"req.b\"]\n    subscribe = \"_INBOX.>\"\n  }\n  RESPONDER = {\n    subscribe = [\"req.a\", \"req.b\"]\n    publish = \"_INBOX.>\"\n  }\n  users = [\n    {user: admin,   password: $ADMIN_PASS, permissions: $ADMIN}\n    {user: client,  password: $CLIENT_PASS, permissions: $REQUESTOR}\n    {user: service,  password: $SERVICE_PASS, permissions: $RESPONDER}\n    {user: other, password: $OTHER_PASS}\n  ]\n}\n}\nport = $v\nport = 4222\n", "sha256:100cc9bbf149cbd678347edbb57de85c3cc23d20ce6177d77bb6222769796a2c"),
    ("docs/cluster", "v {\ncluster {\n  name: example\n\n  # host/port for inbound route connections from other server\n  listen: localhost:4244\n\n  # Authorization for route connections\n  # Other server can connect if they supply the credentials listed here\n  # This server will connect to discovered routes using this user\n  authorization {\n    user: route_user\n    password: pwd\n    timeout: 0.5\n  }\n\n  # This server establishes routes with these server.\n  # This server solicits new routes and Routes are actively solicited and connected to from this server.\n  # Other servers can connect to us if they supply the correct credentials\n  # in their routes definitions from above.\n  routes = [\n    nats://route_user:pwd@127.0.0.1:4245\n    nats://route_user:pwd@127.0.0.1:4246\n  ]\n}\n}\nport = $v\nport = 4222\n", "sha256:9e2d05ddb8da33ec9b0fc143723db3900a109bb45122978ea74b3539aa357d5d"),
    ("docs/jetstream", "v {\njetstream {\n  store_dir: nats\n\n  # 1GB\n  max_memory_store: 1073741824\n\n  # 10GB\n  max_file_store: 10737418240\n}\n}\nport = $v\nport = 4222\n", "sha256:4f1dc6e15b758879c98e156dde37ab2da82de2a729b1c7ad83720763b337fdf4"),
    ("docs/readme_bad_token", "v {\nlisten: 127.0.0.1:4222\nauthorization: {\n    # BAD!\n    token: 3secret\n}\n}\nport = $v\nport = 4222\n", "sha256:c1b0480afefade297827ac2a9a924d853862b58f425042005b46e2077f403d0d"),
    ("docs/readme_variable", "v {\n# Define a variable in the config\nTOKEN: \"secret\"\n\n# Reference the variable\nauthorization {\n    token: $TOKEN\n}\n}\nport = $v\nport = 4222\n", "sha256:71e291983cc3c9c243798900c8165cd0ba98ea496bb7a9960dd1375134d34dbe"),
    ("docs/simple_server", "v {\n# Comments start with hash\nport: 4222\nmonitor_port: 8222\n\nserver_name: my-nats-server\n\n# Nested configuration blocks\ncluster {\n  port: 6222\n  name: \"my-cluster\"\n}\n}\nport = $v\nport = 4222\n", "sha256:b8c4c1344a1c3dc3b04eafde8620e95cb22e3c303a12cf869ff82da79aaf3ddf"),
    ("docs/tls", "v {\ntls: {\n  cert_file: \"./server-cert.pem\"\n  key_file: \"./server-key.pem\"\n  handshake_first: \"300ms\"\n  timeout: 0.0001\n}\n}\nport = $v\nport = 4222\n", "sha256:b71dd2b4a91eca0ec21c3b5416665bf10027e3b5068cb0af062e25082b7c5e6a"),
];

#[test]
fn digests_match_nats_server() {
    for &(name, text, expected) in NATS_SERVER_DIGESTS {
        let map = parse_str_with_env(text, &probe_environment)
            .unwrap_or_else(|error| panic!("{name}: {error}"));
        assert_eq!(digest(&map), expected, "{name}: {text:?}");
    }
    assert!(NATS_SERVER_DIGESTS.len() >= 60);
}

#[test]
fn the_digest_is_of_go_json() {
    let map = parse("b = [1, 2.5, \"<x>\", true, 2016-05-04T18:53:41Z]\na { d = {}, c = [] }");
    assert_eq!(
        String::from_utf8(encode_json(&map)).unwrap(),
        "{\"a\":{\"c\":[],\"d\":{}},\"b\":[1,2.5,\"\\u003cx\\u003e\",true,\"2016-05-04T18:53:41Z\"]}\n"
    );
}

// ---- nats-server's documentation examples (docs.nats.io configuration pages). ----

#[test]
fn documentation_strings_and_numbers() {
    // "BAD Config": `3secret` is a string all the same.
    assert_eq!(
        tree("listen: 127.0.0.1:4222\nauthorization: {\n    # BAD!\n    token: 3secret\n}\n"),
        json!({"listen": "127.0.0.1:4222", "authorization": {"token": "3secret"}})
    );
    assert_eq!(
        tree("listen: 127.0.0.1:4222\nauthorization: {\n    token: \"3secret\"\n}\n"),
        json!({"listen": "127.0.0.1:4222", "authorization": {"token": "3secret"}})
    );
    // A quoted `$` is no variable.
    assert_eq!(tree("foo = \"$example\""), json!({"foo": "$example"}));
}

#[test]
fn documentation_variables() {
    let map = parse("# Define a variable in the config\nTOKEN: \"secret\"\n\n# Reference the variable\nauthorization {\n    token: $TOKEN\n}\n");
    assert_eq!(
        plain_map(&map),
        json!({"TOKEN": "secret", "authorization": {"token": "secret"}})
    );
    assert!(map.get("TOKEN").unwrap().used_variable);
    assert!(!map.get("authorization").unwrap().used_variable);
    let environment = |name: &str| (name == "TOKEN").then(|| "hello".to_string());
    let map = parse_str_with_env(
        "# TOKEN is defined in the environment\nauthorization {\n    token: $TOKEN\n}\n",
        &environment,
    )
    .unwrap();
    assert_eq!(
        plain_map(&map),
        json!({"authorization": {"token": "hello"}})
    );
}

#[test]
fn documentation_include_directive() {
    let directory = TemporaryDirectory::new();
    directory.write("auth.conf", "authorization: {\n    token: \"f0oBar\"\n}\n");
    let server = directory.write(
        "server.conf",
        "listen: 127.0.0.1:4222\ninclude ./auth.conf\n",
    );
    assert_eq!(
        plain_map(&parse_file_quietly(&server).unwrap()),
        json!({"listen": "127.0.0.1:4222", "authorization": {"token": "f0oBar"}})
    );
}

#[test]
fn documentation_simple_server_and_cluster() {
    assert_eq!(
        tree("# Comments start with hash\nport: 4222\nmonitor_port: 8222\n\nserver_name: my-nats-server\n\n# Nested configuration blocks\ncluster {\n  port: 6222\n  name: \"my-cluster\"\n}\n"),
        json!({"port": 4222, "monitor_port": 8222, "server_name": "my-nats-server", "cluster": {"port": 6222, "name": "my-cluster"}})
    );
    let cluster = "cluster {\n  name: example\n\n  # host/port for inbound route connections from other server\n  listen: localhost:4244\n\n  # Authorization for route connections\n  authorization {\n    user: route_user\n    password: pwd\n    timeout: 0.5\n  }\n\n  routes = [\n    nats://route_user:pwd@127.0.0.1:4245\n    nats://route_user:pwd@127.0.0.1:4246\n  ]\n}\n";
    assert_eq!(
        tree(cluster),
        json!({"cluster": {
            "name": "example",
            "listen": "localhost:4244",
            "authorization": {"user": "route_user", "password": "pwd", "timeout": 0.5},
            "routes": ["nats://route_user:pwd@127.0.0.1:4245", "nats://route_user:pwd@127.0.0.1:4246"],
        }})
    );
}

#[test]
fn documentation_authorization() {
    let text = "authorization {\n  default_permissions = {\n    publish = \"SANDBOX.*\"\n    subscribe = [\"PUBLIC.>\", \"_INBOX.>\"]\n  }\n  ADMIN = {\n    publish = \">\"\n    subscribe = \">\"\n  }\n  REQUESTOR = {\n    publish = [\"req.a\", \"req.b\"]\n    subscribe = \"_INBOX.>\"\n  }\n  users = [\n    {user: admin,   password: $ADMIN_PASS, permissions: $ADMIN}\n    {user: client,  password: $CLIENT_PASS, permissions: $REQUESTOR}\n    {user: other, password: $OTHER_PASS}\n  ]\n}\n";
    let map = parse_str_with_env(text, &probe_environment).unwrap();
    assert_eq!(
        plain_map(&map),
        json!({"authorization": {
            "default_permissions": {"publish": "SANDBOX.*", "subscribe": ["PUBLIC.>", "_INBOX.>"]},
            "ADMIN": {"publish": ">", "subscribe": ">"},
            "REQUESTOR": {"publish": ["req.a", "req.b"], "subscribe": "_INBOX.>"},
            "users": [
                {"user": "admin", "password": "a", "permissions": {"publish": ">", "subscribe": ">"}},
                {"user": "client", "password": "b", "permissions": {"publish": ["req.a", "req.b"], "subscribe": "_INBOX.>"}},
                {"user": "other", "password": "d"},
            ],
        }})
    );
    let authorization = map.get("authorization").unwrap().value.as_map().unwrap();
    assert!(authorization.get("ADMIN").unwrap().used_variable);
    assert!(
        !authorization
            .get("default_permissions")
            .unwrap()
            .used_variable
    );
    assert_eq!(
        tree("authorization: {\n    users: [\n        { user: a, password: a },\n        { user: b, password: b, permissions: {subscribe: \"q\", allow_responses: true } },\n        { user: c, password: c, permissions: {subscribe: \"q\", allow_responses: { max: 5, expires: \"1m\" } } }\n    ]\n}\n"),
        json!({"authorization": {"users": [
            {"user": "a", "password": "a"},
            {"user": "b", "password": "b", "permissions": {"subscribe": "q", "allow_responses": true}},
            {"user": "c", "password": "c", "permissions": {"subscribe": "q", "allow_responses": {"max": 5, "expires": "1m"}}},
        ]}})
    );
    // The queue-permissions example of the documentation misses two `}`: nats-server says
    // so, and so does this.
    assert_eq!(
        parse_error(QUEUE_PERMISSIONS_EXAMPLE),
        "Parse error on line 9: 'Expected a map value terminator \",\" or a map terminator \"}\", but got '\"' instead.'"
    );
}

/// The documentation's queue permissions example, as published.
const QUEUE_PERMISSIONS_EXAMPLE: &str = "users = [\n  {\n    user: \"a\", password: \"a\", permissions: {\n      sub: {\n        allow: [\"foo queue\"]\n     }\n  }\n  {\n    user: \"b\", password: \"b\", permissions: {\n      sub: {\n        # Allow plain subscription foo, but only v1 groups or *.dev queue groups\n        allow: [\"foo\", \"foo v1\", \"foo v1.>\", \"foo *.dev\"]\n\n        # Prevent queue subscriptions on prod groups\n        deny: [\"> *.prod\"]\n     }\n  }\n]\n";

#[test]
fn documentation_accounts() {
    let text = "accounts: {\n    A: {\n        users: [\n            {user: a, password: a}\n        ]\n        exports: [\n            {stream: puba.>}\n            {service: pubq.>}\n            {stream: b.>, accounts: [B]}\n            {service: q.b, accounts: [B]}\n        ]\n    },\n    B: {\n        users: [\n            {user: b, password: b}\n        ]\n        imports: [\n            {stream: {account: A, subject: b.>}}\n            {service: {account: A, subject: q.b}}\n        ]\n    }\n    C: {\n        users: [\n            {user: c, password: c}\n        ]\n        imports: [\n            {stream: {account: A, subject: puba.>}, prefix: from_a}\n            {service: {account: A, subject: pubq.C}, to: Q}\n        ]\n    }\n}\nno_auth_user: a\n";
    assert_eq!(
        tree(text),
        json!({
            "accounts": {
                "A": {
                    "users": [{"user": "a", "password": "a"}],
                    "exports": [
                        {"stream": "puba.>"}, {"service": "pubq.>"},
                        {"stream": "b.>", "accounts": ["B"]}, {"service": "q.b", "accounts": ["B"]},
                    ],
                },
                "B": {
                    "users": [{"user": "b", "password": "b"}],
                    "imports": [
                        {"stream": {"account": "A", "subject": "b.>"}},
                        {"service": {"account": "A", "subject": "q.b"}},
                    ],
                },
                "C": {
                    "users": [{"user": "c", "password": "c"}],
                    "imports": [
                        {"stream": {"account": "A", "subject": "puba.>"}, "prefix": "from_a"},
                        {"service": {"account": "A", "subject": "pubq.C"}, "to": "Q"},
                    ],
                },
            },
            "no_auth_user": "a",
        })
    );
}

#[test]
fn documentation_tls_and_jetstream() {
    assert_eq!(
        tree("tls: {\n  cert_file: \"./server-cert.pem\"\n  key_file: \"./server-key.pem\"\n  handshake_first: \"300ms\"\n  # clients will fail to connect (value is too low)\n  timeout: 0.0001\n}\n"),
        json!({"tls": {"cert_file": "./server-cert.pem", "key_file": "./server-key.pem", "handshake_first": "300ms", "timeout": 0.0001}})
    );
    assert_eq!(
        tree("jetstream {\n  store_dir: nats\n\n  # 1GB\n  max_memory_store: 1073741824\n\n  # 10GB\n  max_file_store: 10737418240\n}\n"),
        json!({"jetstream": {"store_dir": "nats", "max_memory_store": 1073741824i64, "max_file_store": 10737418240i64}})
    );
}

// ---- Values and their types. ----

#[test]
fn strings_in_every_form() {
    assert_eq!(
        tree("a = unquoted\nb = 'single \\t raw'\nc = \"double \\t \\n \\r \\\" \\\\ \\x41\"\nd = (\n  block\n)\ne = \"\"\nf = ''\ng = a\\tb\n"),
        json!({
            "a": "unquoted",
            "b": "single \\t raw",
            "c": "double \t \n \r \" \\ A",
            "d": "\n  block\n",
            "e": "",
            "f": "",
            "g": "a\tb",
        })
    );
    // `\u` is no escape in nats-server.
    assert_eq!(
        parse_error("a = \"\\u0041\""),
        "Parse error on line 1: 'Invalid escape character 'u'. Only the following escape \
         characters are allowed: \\xXX, \\t, \\n, \\r, \\\", \\\\.'"
    );
}

#[test]
fn numbers_floats_datetimes_and_addresses() {
    assert_eq!(
        tree("a = [1, -2, 1.5, -0.25, 2016-05-04T18:53:41Z, 127.0.0.1:4222, 1.2.3, 3xyz, 9223372036854775807 ]"),
        json!({"a": [1, -2, 1.5, -0.25, {"datetime": "2016-05-04T18:53:41Z"}, "127.0.0.1:4222", "1.2.3", "3xyz", i64::MAX]})
    );
    // `[1, 2]`: `2]` is a string and the array goes on (nats-server does the same).
    assert_eq!(
        parse_error("a = [1, 2]\nport = 1\n"),
        "Parse error on line 2: 'Expected an array value terminator \",\" or an array \
         terminator \"]\", but got '=' instead.'"
    );
    assert_eq!(tree("a = [1, 2 ]"), json!({"a": [1, 2]}));
}

#[test]
fn values_know_their_go_type() {
    let map = parse("a = 1\nb = 1.5\nc = true\nd = x\ne = 2016-05-04T18:53:41Z\nf = []\ng = {}");
    let names: Vec<&str> = map
        .iter()
        .map(|(_, item)| item.value.go_type_name())
        .collect();
    assert_eq!(
        names,
        [
            "int64",
            "float64",
            "bool",
            "string",
            "time.Time",
            "[]interface {}",
            "map[string]interface {}"
        ]
    );
}

// ---- nats-server's parser, as it is. ----

#[test]
fn a_repeated_key_takes_the_later_value_in_the_earlier_place() {
    let map = parse("a = 1\nb = 2\na = 3\n");
    assert_eq!(map.keys().collect::<Vec<_>>(), ["a", "b"]);
    assert_eq!(map.get("a").unwrap().value, Value::Integer(3));
    assert_eq!(position_of(&map, "a"), (3, 1));
    // A definition replaced after it was referenced is no longer a used variable.
    let map = parse("v = 1\nport = $v\nv = 2\n");
    assert!(!map.get("v").unwrap().used_variable);
    let map = parse("v = 1\nv = 2\nport = $v\n");
    assert!(map.get("v").unwrap().used_variable);
    assert_eq!(map.get("port").unwrap().value, Value::Integer(2));
}

#[test]
fn a_dropped_value_leaves_its_key_waiting() {
    // An unknown unit suffix sets nothing; the map then goes to the waiting key.
    assert_eq!(tree("port = 1kbb"), json!({}));
    assert_eq!(tree("m { port = 1kbb }"), json!({"port": {}}));
    assert_eq!(tree("m { a }"), json!({"a": {}}));
    let map = parse("m { port = 1kbb }");
    assert_eq!(position_of(&map, "port"), (1, 4));
}

#[test]
fn variables_see_only_what_is_set_so_far_in_open_maps() {
    assert_eq!(
        parse_error("a = $b\nb = 1"),
        "variable reference for 'b' on line 1 can not be found"
    );
    // Arrays are not scopes; closed maps are not looked into.
    assert_eq!(
        parse_error("a = [ {x = 1}, $x ]"),
        "variable reference for 'x' on line 1 can not be found"
    );
    assert_eq!(
        tree("x = 0\na = [ {x = 1, y = $x}, $x ]"),
        json!({"x": 0, "a": [{"x": 1, "y": 1}, 0]})
    );
    // Variable names are anything up to where an unquoted string ends.
    assert_eq!(tree("'a.b' = 1\nc = $a.b"), json!({"a.b": 1, "c": 1}));
    // Keys are case-sensitive for lookups.
    assert_eq!(
        parse_error("A = 1\nb = $a"),
        "variable reference for 'a' on line 2 can not be found"
    );
    // A variable in an array has its own position; in a map, its key's.
    let map = parse("v = 1\na = [ $v ]\nb = $v");
    let element = &map.get("a").unwrap().value.as_array().unwrap()[0];
    assert_eq!((element.position.line, element.position.column), (2, 8));
    assert_eq!(position_of(&map, "b"), (3, 1));
}

#[test]
fn environment_cycles_and_errors() {
    let environment = |name: &str| {
        let value = match name {
            "A" => "$B",
            "B" => "$A",
            "BAD" => "\"abc",
            "DROPPED" => "1kbb",
            "INCLUDE" => "{ include 'natsring-no-such-file.conf' }",
            _ => return None,
        };
        Some(value.to_string())
    };
    let error = |text: &str| {
        parse_str_with_env(text, &environment)
            .unwrap_err()
            .to_string()
    };
    assert_eq!(
        error("port = $A"),
        "variable reference for 'A' on line 1 could not be parsed: variable reference for 'B' on \
         line 1 could not be parsed: variable reference for 'A' on line 1 could not be parsed: \
         variable reference cycle for 'A'"
    );
    assert_eq!(
        error("\nport = $BAD"),
        "variable reference for 'BAD' on line 2 could not be parsed: Parse error on line 1: \
         'Unexpected EOF.'"
    );
    assert_eq!(
        error("port = $DROPPED"),
        "variable reference for 'DROPPED' on line 1 can not be found"
    );
    // Environment values are parsed outside nats-server's pedantic mode.
    assert_eq!(
        error("port = $INCLUDE"),
        "variable reference for 'INCLUDE' on line 1 could not be parsed: error parsing include \
         file 'natsring-no-such-file.conf', error opening config file: open \
         natsring-no-such-file.conf: no such file or directory"
    );
}

#[test]
fn errors_of_values() {
    let cases = [
        (
            "port = 99999999999999999999",
            "integer '99999999999999999999' is out of the range",
        ),
        (
            "port = 99999999999999999999k",
            "integer '99999999999999999999k' is out of the range",
        ),
        (
            "port = -9223372036854775809",
            "integer '-9223372036854775809' is out of the range",
        ),
        ("port = ٣", "expected integer, but got '٣'"),
        ("port = 1.٣", "expected float, but got '1.٣'"),
        (
            "v = 2016-02-30T18:53:41Z",
            "expected Zulu formatted DateTime, but got '2016-02-30T18:53:41Z'",
        ),
        (
            "v = 2016-05-04T25:53:41Z",
            "expected Zulu formatted DateTime, but got '2016-05-04T25:53:41Z'",
        ),
    ];
    for (text, message) in cases {
        assert_eq!(parse_error(text), message, "{text}");
    }
    let huge = format!("v = 1{}.0", "0".repeat(400));
    assert_eq!(
        parse_error(&huge),
        format!("float '1{}.0' is out of the range", "0".repeat(400))
    );
    assert_eq!(tree("v = -9223372036854775808"), json!({"v": i64::MIN}));
}

#[test]
fn lexer_errors_read_as_nats_server_prints_them() {
    assert_eq!(
        parse_error("port =\n"),
        "Parse error on line 2: 'Expected value but found new line'"
    );
    assert_eq!(
        parse_error("\nlisten = 4222\n\ncluster = {\n\n  foo = bar\n\n"),
        "Parse error on line 8: 'Unexpected EOF processing map.'"
    );
    assert_eq!(
        parse_error("{ port = 1"),
        "Parse error on line 1: 'Expected a block-level value to end with a new line, comment \
         or EOF, but got '\0' instead.'"
    );
    let error = parse_str_with_env("a = 1\nb = 'x", &no_environment).unwrap_err();
    let position = error.position().unwrap();
    assert_eq!((position.line, position.column), (2, 7));
}

#[test]
fn config_is_invalid_names_the_file_as_given() {
    let directory = TemporaryDirectory::new();
    let file = directory.write("t.conf", "port = 1\nfoo");
    let error = parse_file_quietly(&file).unwrap_err();
    assert_eq!(
        error.to_string(),
        format!("config is invalid ({}:2:4)", file.display())
    );
    assert_eq!(
        error.position().unwrap().file.as_deref(),
        Some(file.as_path())
    );
}

// ---- Files and includes. ----

#[test]
fn file_errors_read_as_go_prints_them() {
    let directory = TemporaryDirectory::new();
    let missing = directory.path().join("missing.conf");
    assert_eq!(
        parse_file_quietly(&missing).unwrap_err().to_string(),
        format!("open {}: no such file or directory", missing.display())
    );
    assert_eq!(
        parse_file_quietly(directory.path())
            .unwrap_err()
            .to_string(),
        format!("read {}: is a directory", directory.path().display())
    );
    std::fs::create_dir(directory.path().join("sub")).unwrap();
    let main = directory.write("main.conf", "include 'nope.conf'\n");
    let prefix = directory.path().display();
    assert_eq!(
        parse_file_quietly(&main).unwrap_err().to_string(),
        format!("error parsing include file 'nope.conf', open {prefix}/nope.conf: no such file or directory")
    );
    let main = directory.write("main.conf", "include sub\n");
    assert_eq!(
        parse_file_quietly(&main).unwrap_err().to_string(),
        format!("error parsing include file 'sub', read {prefix}/sub: is a directory")
    );
    // An empty include names the including file's directory.
    let main = directory.write("main.conf", "include ");
    assert_eq!(
        parse_file_quietly(&main).unwrap_err().to_string(),
        format!("error parsing include file '', read {prefix}: is a directory")
    );
}

#[test]
fn an_unreadable_include_is_permission_denied() {
    use std::os::unix::fs::PermissionsExt;
    let directory = TemporaryDirectory::new();
    let secret = directory.write("secret.conf", "port = 1\n");
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o000)).unwrap();
    if std::fs::read(&secret).is_ok() {
        // Running as root: permissions do not apply; the errno text is checked in `go`.
        return;
    }
    let main = directory.write("main.conf", "include secret.conf\n");
    assert_eq!(
        parse_file_quietly(&main).unwrap_err().to_string(),
        format!(
            "error parsing include file 'secret.conf', open {}: permission denied",
            secret.display()
        )
    );
}

#[test]
fn include_paths_are_joined_as_go_joins_them() {
    let directory = TemporaryDirectory::new();
    directory.write("conf/a.conf", "include ../b/b.conf\nx = 1\n");
    directory.write("b/b.conf", "include c.conf\n");
    directory.write("b/c.conf", "y = 2\n");
    // An absolute path is still taken relative to the including file (Go's filepath.Join).
    directory.write("main/etc/d.conf", "z = 3\n");
    let main = directory.write(
        "main/main.conf",
        "include '../conf/a.conf'\ninclude /etc/d.conf\n",
    );
    let map = parse_file_quietly(&main).unwrap();
    assert_eq!(plain_map(&map), json!({"y": 2, "x": 1, "z": 3}));
    // Included names are cleaned (`main/../b/c.conf` is `b/c.conf`).
    let c = map.get("y").unwrap().position.file.clone().unwrap();
    assert_eq!(&*c, directory.path().join("b/c.conf").as_path());
    assert_eq!(
        file_name(&map.get("y").unwrap().position),
        directory.path().join("b/c.conf").display().to_string()
    );
}

#[test]
fn include_in_a_map_and_replacing_keys() {
    let directory = TemporaryDirectory::new();
    directory.write("inc.conf", "a = 10\nc = 30\n");
    let main = directory.write(
        "main.conf",
        "a = 1\nm { b = 2; include inc.conf; d = $c }\nb = $a\n",
    );
    assert_eq!(
        plain_map(&parse_file_quietly(&main).unwrap()),
        json!({"a": 1, "m": {"b": 2, "a": 10, "c": 30, "d": 30}, "b": 1})
    );
    // An included file does not see the including file's variables.
    directory.write("uses.conf", "x = $a\n");
    let main = directory.write("main.conf", "a = 1\ninclude uses.conf\n");
    assert_eq!(
        parse_file_quietly(&main).unwrap_err().to_string(),
        "error parsing include file 'uses.conf', variable reference for 'a' on line 1 can not be found"
    );
}

#[test]
fn parse_str_includes_from_the_current_directory() {
    let error = parse_error("include natsring-conf-test-no-such-file.conf");
    assert_eq!(
        error,
        "error parsing include file 'natsring-conf-test-no-such-file.conf', open \
         natsring-conf-test-no-such-file.conf: no such file or directory"
    );
}

// ---- Bounds (natsring's; nats-server has none). ----

#[test]
fn includes_nest_at_most_the_limit() {
    let directory = TemporaryDirectory::new();
    let main = directory.write("self.conf", "include self.conf\n");
    let error = parse_file_quietly(&main).unwrap_err().to_string();
    let wrapping = "error parsing include file 'self.conf', ";
    let expected = format!(
        "{}includes nest deeper than {} files (natsring's limit)",
        wrapping.repeat(crate::limits::CONF_INCLUDE_DEPTH_MAX + 1),
        crate::limits::CONF_INCLUDE_DEPTH_MAX
    );
    assert_eq!(error, expected);
}

#[test]
fn input_is_bounded() {
    let text = " ".repeat(crate::limits::CONF_INPUT_BYTES_MAX + 1);
    assert_eq!(
        parse_error(&text),
        format!(
            "the configuration, its includes and the environment values it uses are larger than \
             {} bytes (natsring's limit)",
            crate::limits::CONF_INPUT_BYTES_MAX
        )
    );
    // Including one file many times counts each time.
    let directory = TemporaryDirectory::new();
    directory.write("small.conf", &format!("# {}\n", "x".repeat(1000)));
    let main = directory.write("main.conf", &"include small.conf\n".repeat(20));
    let mut session = parser::Session::with_budgets(quiet_sources(), 10_000, usize::MAX);
    let path = main.as_os_str().as_encoded_bytes();
    let error = session.parse_file(path, true, 8).unwrap_err().to_string();
    assert!(
        error.starts_with(
            "error parsing include file 'small.conf', the configuration, its includes"
        ),
        "{error}"
    );
}

#[test]
fn variable_copies_are_bounded() {
    // A "billion laughs": each level ten copies of the one before.
    let mut text = String::from("a0 = [1, 1, 1, 1, 1, 1, 1, 1, 1, 1 ]\n");
    for level in 1..7 {
        let previous = format!("$a{}", level - 1);
        let copies = [previous.as_str(); 10].join(", ");
        text.push_str(&format!("a{level} = [{copies} ]\n"));
    }
    let mut session = parser::Session::with_budgets(quiet_sources(), usize::MAX, 10_000_000);
    let error = session
        .parse_text(text.as_bytes(), None, true, 8)
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "the configuration's values, with the copies variable references make, take more \
             than {} bytes (natsring's limit)",
            crate::limits::CONF_TREE_BYTES_MAX
        )
    );
    // The same with three levels fits.
    let three_levels: String = text
        .lines()
        .take(3)
        .map(|line| format!("{line}\n"))
        .collect();
    let mut session = parser::Session::with_budgets(quiet_sources(), usize::MAX, 10_000_000);
    let map = session
        .parse_text(three_levels.as_bytes(), None, true, 8)
        .unwrap();
    assert_eq!(map.get("a2").unwrap().value.as_array().unwrap().len(), 10);
}

#[test]
fn variable_copies_cannot_nest_deeper_than_the_limit() {
    let depth = crate::limits::CONF_NESTING_DEPTH_MAX;
    let half = depth / 2 + 1;
    let text = format!(
        "a = {}1{}\nb = {}$a{}\n",
        "[".repeat(half),
        " ]".repeat(half),
        "[".repeat(half),
        " ]".repeat(half)
    );
    assert_eq!(
        parse_error(&text),
        format!("variable reference for 'a' on line 2 nests values deeper than {depth} levels (natsring's limit)")
    );
}

#[test]
fn environment_references_nest_at_most_the_limit() {
    // V0 -> V1 -> ... each a reference to the next, no cycle.
    let environment = |name: &str| {
        let level: usize = name.strip_prefix('V')?.parse().ok()?;
        Some(format!("$V{}", level + 1))
    };
    let error = parse_str_with_env("port = $V0", &environment)
        .unwrap_err()
        .to_string();
    assert!(
        error.ends_with(&format!(
            "environment variables referencing environment variables nest deeper than {} \
             (natsring's limit)",
            crate::limits::CONF_ENVIRONMENT_DEPTH_MAX
        )),
        "{error}"
    );
}

#[test]
fn bytes_that_are_not_utf8_are_replaced() {
    let sources = Sources {
        environment: &no_environment,
        read_file: &read_file_from_disk,
    };
    let map = parse_bytes_with(b"a = \"x\\xff\"\nb = \xfe\n", None, sources).unwrap();
    assert_eq!(plain_map(&map), json!({"a": "x\u{FFFD}", "b": "\u{FFFD}"}));
}

// ---- The corpus (tests/conf/corpus), classified by nats-server -t. ----

/// Messages of nats-server's option layer, which rejects some files this layer accepts.
fn is_option_layer_error(name: &str, message: &str) -> bool {
    // The option layer's errors carry the file's name and a position (`file:line:col: ...`),
    // except the permissions nats-server checks on a bare value, which it reports without one.
    message.starts_with(&format!("{name}:"))
        || message.ends_with(" is not a valid subject")
        || message.ends_with(" is not a valid queue")
        || message.starts_with("Expected subject permissions to be a subject")
}

#[test]
fn corpus_agrees_with_nats_server() {
    let directory = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conf/corpus");
    let record = std::fs::read_to_string(directory.join("nats-server-t.txt")).unwrap();
    let prefix = format!("{}/", directory.display());
    let mut files = 0;
    for line in record.lines() {
        let (name, said) = line.split_once('\t').unwrap();
        let said = said.strip_prefix("nats-server: ").unwrap();
        let outcome = parse_file_quietly(&directory.join(name));
        let valid = format!("configuration file {name} is valid (");
        if let Some(digest_text) = said.strip_prefix(&valid) {
            assert!(name.starts_with("accept-"), "{name}");
            let map = outcome.unwrap_or_else(|error| panic!("{name}: {error}"));
            assert_eq!(format!("{})", digest(&map)), digest_text, "{name}");
        } else {
            assert!(name.starts_with("reject-"), "{name}");
            match outcome {
                Err(error) => assert_eq!(error.to_string().replace(&prefix, ""), said, "{name}"),
                Ok(_) => assert!(is_option_layer_error(name, said), "{name}: {said}"),
            }
        }
        files += 1;
    }
    assert!(files >= 60, "{files} files in the corpus record");
    let on_disk = std::fs::read_dir(&directory)
        .unwrap()
        .filter(|entry| {
            let name = entry.as_ref().unwrap().file_name();
            name.to_string_lossy().ends_with(".conf")
        })
        .count();
    assert_eq!(on_disk, files, "every corpus file is in nats-server-t.txt");
}
