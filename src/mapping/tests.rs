//! Ported from nats-server's `subject_transform_test.go`, plus the subjects nats-server 2.15.1
//! delivered end to end for the same mappings (`tests/mapping_nats_server.rs` re-checks them
//! against the binary) and the error texts its `-t` printed.

use super::*;
use crate::account::WeightedDestination;

/// A fixed "random" source: always `value`.
fn constant(value: u32) -> impl FnMut() -> u32 {
    move || value
}

/// xorshift32: deterministic, good enough to check proportions.
fn xorshift(mut state: u32) -> impl FnMut() -> u32 {
    move || {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        state
    }
}

fn transform(source: &str, destination: &str) -> Transform {
    Transform::new(source, destination)
        .unwrap_or_else(|error| panic!("{source:?} -> {destination:?}: {error}"))
}

/// nats-server's `shouldMatch`: the transform maps `sample` to one of `expected`.
#[track_caller]
fn should_match(source: &str, destination: &str, sample: &str, expected: &[&str]) {
    let transform = transform(source, destination);
    let mut out = Vec::new();
    let mapped = transform
        .apply(sample.as_bytes(), &mut xorshift(7), &mut out)
        .unwrap_or_else(|| panic!("{source:?} -> {destination:?} does not match {sample:?}"));
    let mapped = String::from_utf8_lossy(mapped).into_owned();
    assert!(
        expected.contains(&mapped.as_str()),
        "{source:?} -> {destination:?} on {sample:?}: got {mapped:?}, expected {expected:?}"
    );
}

#[track_caller]
fn error_text(source: &str, destination: &str) -> String {
    match Transform::new(source, destination) {
        Ok(_) => panic!("{source:?} -> {destination:?} was accepted"),
        Err(error) => error.to_string(),
    }
}

#[test]
fn placeholders_parse_like_index_place_holders() {
    assert_eq!(parse_placeholder("$1"), Ok(Placeholder::Wildcard(1)));
    let partition = Placeholder::Partition {
        buckets: 10,
        indexes: vec![1, 2, 3],
    };
    assert_eq!(
        parse_placeholder("{{partition(10,1,2,3)}}"),
        Ok(partition.clone())
    );
    assert_eq!(
        parse_placeholder("{{ Partition (10,1,2,3) }}"),
        Ok(partition)
    );
    assert_eq!(
        parse_placeholder("{{wildcard(2)}}"),
        Ok(Placeholder::Wildcard(2))
    );
    let index_integer = |function, index, integer| {
        Ok(Placeholder::IndexInteger {
            function,
            index,
            integer,
        })
    };
    assert_eq!(
        parse_placeholder("{{SplitFromLeft(2,1)}}"),
        index_integer(Function::SplitFromLeft, 2, 1)
    );
    assert_eq!(
        parse_placeholder("{{SplitFromRight(3,2)}}"),
        index_integer(Function::SplitFromRight, 3, 2)
    );
    assert_eq!(
        parse_placeholder("{{SliceFromLeft(2,2)}}"),
        index_integer(Function::SliceFromLeft, 2, 2)
    );
    assert_eq!(
        parse_placeholder("{{Left(3,2)}}"),
        index_integer(Function::Left, 3, 2)
    );
    assert_eq!(
        parse_placeholder("{{Right(3,2)}}"),
        index_integer(Function::Right, 3, 2)
    );
    // `$` followed by a non-number is a literal token; `{{}}` is too short to be a function.
    assert_eq!(parse_placeholder("$SYS"), Ok(Placeholder::None));
    assert_eq!(parse_placeholder("{{}}"), Ok(Placeholder::None));
    // Only the first letter of each word may change case.
    assert_eq!(
        parse_placeholder("{{splitfromleft(1,1)}}"),
        index_integer(Function::SplitFromLeft, 1, 1)
    );
    assert!(parse_placeholder("{{WILDCARD(1)}}").is_err());
    // Unanchored, like the regular expression: a function anywhere in the token counts.
    assert_eq!(
        parse_placeholder("{{a}}{{wildcard(1)}}"),
        Ok(Placeholder::Wildcard(1))
    );
    // The split separator is taken as written, quotes included.
    assert_eq!(
        parse_placeholder("{{split(1,\"-\")}}"),
        Ok(Placeholder::Split {
            index: 1,
            separator: "\"-\"".into()
        })
    );
}

#[test]
fn invalid_templates_are_refused() {
    // nats-server's `shouldErr` list (non-strict).
    for (source, destination) in [
        ("foo..", "bar"),
        ("foo.*", "bar.*"),
        ("foo.*", "bar.$2"),
        ("foo.*", "bar.$1.>"),
        ("foo.>", "bar.baz"),
        ("foo.*", "foo.{{wildcard(2)}}"),
        ("foo.*", "foo.{{unimplemented(1)}}"),
        ("foo.*", "foo.{{partition()}}"),
        ("foo.*", "foo.{{random()}}"),
        ("foo.*", "foo.{{wildcard(foo)}}"),
        ("foo.*", "foo.{{wildcard()}}"),
        ("foo.*", "foo.{{wildcard(1,2)}}"),
        ("foo.*", "foo.{{ wildcard5) }}"),
        ("foo.*", "foo.{{splitLeft(2,2}}"),
        ("foo", "bla.{{wildcard(1)}}"),
        ("foo.*", "foo.{{partition(2147483648)}}"),
        ("foo.*", "foo.{{random(2147483648)}}"),
    ] {
        assert!(
            Transform::new(source, destination).is_err(),
            "{source:?} -> {destination:?} was accepted"
        );
    }
    // Strict (import) transforms.
    for (source, destination) in [
        ("foo.*.*", "bar.$2"),
        ("foo.*", "foo.$foo"),
        ("foo.*", "bar.{{Partition(2,1)}}"),
    ] {
        assert!(
            Transform::new_strict(source, destination).is_err(),
            "strict {source:?} -> {destination:?} was accepted"
        );
    }
    assert_eq!(
        Transform::new_strict("foo.*", "bar.{{Partition(2,1)}}")
            .unwrap_err()
            .to_string(),
        "invalid mapping destination: the only mapping function allowed for import \
         transforms is {{Wildcard()}} in {{Partition(2,1)}}"
    );
    assert_eq!(
        Transform::new_strict("foo.*.*", "bar.$2")
            .unwrap_err()
            .to_string(),
        "invalid mapping destination: not using all of the token wildcard(s) in bar.$2"
    );
}

#[test]
fn error_texts_match_nats_server() {
    // What `nats-server -t` printed after `Error adding mapping for "src" to "dest" : `.
    let cases = [
        ("foo.*", "bar.{{wildcard(2)}}", "invalid mapping destination: wildcard index out of range in {{wildcard(2)}}: [2]"),
        ("foo.*", "bar.*", "invalid subject"),
        ("foo.*", "bar.>", "invalid subject"),
        ("foo.*", "bar.{{unknown(1)}}", "invalid mapping destination: unknown function in {{unknown(1)}}"),
        ("foo.*", "bar.{{x}}", "invalid mapping destination: unknown function in {{x}}"),
        ("foo.*", "bar.{{WILDCARD(1)}}", "invalid mapping destination: unknown function in {{WILDCARD(1)}}"),
        ("foo.*", "bar.{{partition()}}", "invalid mapping destination: function argument is invalid or in the wrong format in {{partition()}}"),
        ("foo.*", "bar.{{random()}}", "invalid mapping destination: function argument is invalid or in the wrong format in {{random()}}"),
        ("foo.*", "bar.{{wildcard()}}", "invalid mapping destination: not enough arguments passed to the function in {{wildcard()}}"),
        ("foo.*", "bar.{{wildcard(1,2)}}", "invalid mapping destination: too many arguments passed to the function in {{wildcard(1,2)}}"),
        ("foo.*", "bar.{{wildcard(x)}}", "invalid mapping destination: function argument is invalid or in the wrong format in {{wildcard(x)}}"),
        ("foo.*", "bar.{{split(1,a b)}}", "invalid mapping destination: function argument is invalid or in the wrong format in {{split(1,a b)}}"),
        ("foo.*", "bar.{{split(1,-,x)}}", "invalid mapping destination: too many arguments passed to the function in {{split(1,-,x)}}"),
        ("foo.*", "bar.{{split(1)}}", "invalid mapping destination: not enough arguments passed to the function in {{split(1)}}"),
        ("foo.*", "bar.{{splitFromLeft(1)}}", "invalid mapping destination: not enough arguments passed to the function in {{splitFromLeft(1)}}"),
        ("foo.*", "bar.{{left(1)}}", "invalid mapping destination: not enough arguments passed to the function in {{left(1)}}"),
        ("foo.*", "bar.{{left(1,2147483648)}}", "invalid mapping destination: function argument is invalid or in the wrong format in {{left(1,2147483648)}}"),
        ("foo.*", "bar.{{partition(2147483648)}}", "invalid mapping destination: function argument is invalid or in the wrong format in {{partition(2147483648)}}"),
        ("foo.*", "bar.{{random(1,2)}}", "invalid mapping destination: not enough arguments passed to the function in {{random(1,2)}}"),
        ("foo", "bar.$1", "invalid mapping destination: wildcard index out of range in $1"),
        ("foo", "bar.{{split(1,-)}}", "invalid mapping destination: wildcard index out of range in {{split(1,-)}}"),
    ];
    for (source, destination, expected) in cases {
        let mapping = single(source, destination);
        let error = check(&mapping).expect_err(destination).to_string();
        assert_eq!(error, expected, "{source:?} -> {destination:?}");
        // The transform alone agrees where `ValidateMapping` adds nothing.
        assert_eq!(error_text(source, destination), expected);
    }
    // Errors only `ValidateMapping`'s token walk reports.
    for (source, destination, expected) in [
        (
            "foo.*",
            "bar..baz",
            "invalid mapping destination: invalid transform",
        ),
        (
            "foo.*",
            "bar. x",
            "invalid mapping destination: invalid transform",
        ),
        (
            "foo.>",
            "bar.>.x",
            "invalid mapping destination: invalid transform in x",
        ),
        // Token order: the unknown function comes before the out-of-range index after it.
        (
            "foo.*",
            "{{wildcard(5)}}.{{x}}",
            "invalid mapping destination: unknown function in {{x}}",
        ),
    ] {
        let error = check(&single(source, destination)).expect_err(destination);
        assert_eq!(error.to_string(), expected, "{source:?} -> {destination:?}");
    }
    // Accepted by `nats-server -t` (2.15.1 accepts left and right, unlike 2.15.0-dev's source).
    for (source, destination) in [
        ("foo.*", "bar.{{left(1,2)}}"),
        ("foo.*", "bar.{{right(1,2)}}"),
        ("foo.*", "bar.{{a}}{{wildcard(1)}}"),
        ("foo.*", "bar.{{ Wildcard ( 1 ) }}"),
        ("foo", "bar.{{partition(3,1)}}"),
        ("foo.*", "bar.{{split(1,.)}}"),
        ("foo.*", "bar.{{}}"),
        ("foo.*", "bar.$0.$-1"),
        (">", "bar.>"),
        ("*.>", "bar.$1.>"),
    ] {
        check(&single(source, destination))
            .unwrap_or_else(|error| panic!("{source:?} -> {destination:?}: {error}"));
    }
}

#[test]
fn split_separator_with_a_dot_is_refused_by_the_function_only() {
    // `{{split(1,.)}}` is one token of `bar.{{split(1,.)}}`? No: `.` splits the destination,
    // so the tokens are `{{split(1,` and `)}}`, literal tokens nats-server accepts as they are.
    let transform = transform("foo.*", "bar.{{split(1,.)}}");
    let mut out = Vec::new();
    let mapped = transform.apply(b"foo.x", &mut constant(0), &mut out);
    assert_eq!(mapped, Some(&b"bar.{{split(1,.)}}"[..]));
    // Inside one token the dot is refused.
    assert_eq!(
        parse_placeholder("{{split(1,a.b)}}")
            .unwrap_err()
            .to_string(),
        "invalid mapping destination: function argument is invalid or in the wrong format in \
         {{split(1,a.b)}}"
    );
}

#[test]
fn valid_templates_are_accepted() {
    for (source, destination) in [
        ("foo.*.*", "bar.$2"),
        ("foo.*.*", "bar.{{wildcard(1)}}"),
        ("foo.*.*", "bar.{{partition(1)}}"),
        ("foo.*.*", "bar.{{random(5)}}"),
        ("foo", "bar"),
        ("foo.*.bar.*.baz", "req.$2.$1"),
        ("baz.>", "mybaz.>"),
        ("*", "{{splitfromleft(1,1)}}"),
        ("", "prefix.>"),
        ("*.*", "{{partition(10,1,2)}}"),
        (
            "foo.*.*",
            "foo.{{wildcard(1)}}.{{wildcard(2)}}.{{partition(5,1,2)}}",
        ),
        ("foo.*", "foo.{{partition(2147483647)}}"),
        ("foo.*", "foo.{{random(2147483647)}}"),
        ("foo.bar", "foo.{{random(2147483647)}}"),
    ] {
        transform(source, destination);
    }
    Transform::new_strict("foo.*", "bar.{{Wildcard(1)}}").expect("strict wildcard");
}

#[test]
fn every_function_maps_like_nats_server() {
    should_match("", "prefix.>", "foo", &["prefix.foo"]);
    should_match("foo", "bar", "foo", &["bar"]);
    should_match(
        "foo.*.bar.*.baz",
        "req.$2.$1",
        "foo.A.bar.B.baz",
        &["req.B.A"],
    );
    should_match(
        "foo.*.bar.*.baz",
        "req.{{wildcard(2)}}.{{wildcard(1)}}",
        "foo.A.bar.B.baz",
        &["req.B.A"],
    );
    should_match("baz.>", "my.pre.>", "baz.1.2.3", &["my.pre.1.2.3"]);
    should_match("baz.>", "foo.bar.>", "baz.1.2.3", &["foo.bar.1.2.3"]);
    should_match("*", "foo.bar.$1", "foo", &["foo.bar.foo"]);
    should_match("*", "{{splitfromleft(1,3)}}", "12345", &["123.45"]);
    should_match("*", "{{SplitFromRight(1,3)}}", "12345", &["12.345"]);
    should_match(
        "*",
        "{{SliceFromLeft(1,3)}}",
        "1234567890",
        &["123.456.789.0"],
    );
    should_match(
        "*",
        "{{SliceFromRight(1,3)}}",
        "1234567890",
        &["1.234.567.890"],
    );
    should_match("*", "{{split(1,-)}}", "-abc-def--ghi-", &["abc.def.ghi"]);
    should_match("*", "{{split(1,-)}}", "abc-def--ghi-", &["abc.def.ghi"]);
    should_match(
        "*.*",
        "{{split(2,-)}}.{{splitfromleft(1,2)}}",
        "foo.-abc-def--ghij-",
        &["abc.def.ghij.fo.o"],
    );
    should_match("*", "{{right(1,1)}}", "1234", &["4"]);
    should_match("*", "{{right(1,3)}}", "1234", &["234"]);
    should_match("*", "{{right(1,6)}}", "1234", &["1234"]);
    should_match("*", "{{left(1,1)}}", "1234", &["1"]);
    should_match("*", "{{left(1,3)}}", "1234", &["123"]);
    should_match("*", "{{left(1,6)}}", "1234", &["1234"]);
    should_match("*", "bar.{{partition(0)}}", "baz", &["bar.0"]);
    should_match("*", "bar.{{partition(10, 0)}}", "foo", &["bar.3"]);
    should_match("*.*", "bar.{{partition(10)}}", "foo.bar", &["bar.6"]);
    should_match("*", "bar.{{partition(10)}}", "foo", &["bar.3"]);
    should_match("*", "bar.{{partition(10)}}", "baz", &["bar.0"]);
    should_match("*", "bar.{{partition(10)}}", "qux", &["bar.9"]);
    should_match("*", "bar.{{random(0)}}", "qux", &["bar.0"]);
    for seed in 1..100 {
        let transform = transform("*", "bar.{{random(6)}}");
        let mut out = Vec::new();
        let mapped = transform
            .apply(b"qux", &mut xorshift(seed), &mut out)
            .unwrap();
        let digit = mapped.strip_prefix(b"bar.").expect("prefix");
        assert!(
            matches!(digit, b"0" | b"1" | b"2" | b"3" | b"4" | b"5"),
            "{mapped:?}"
        );
    }
    should_match("foo.bar", "baz.{{partition(10)}}", "foo.bar", &["baz.6"]);
    should_match("foo.baz", "qux.{{partition(10)}}", "foo.baz", &["qux.4"]);
    should_match(
        "test.subject",
        "result.{{partition(5)}}",
        "test.subject",
        &["result.0"],
    );
}

#[test]
fn edge_cases_follow_the_go_code() {
    // `$0` and negative indexes name the first source token (Go's map default of 0).
    should_match("foo.*", "bar.$0.$-1.$1", "foo.x", &["bar.foo.foo.x"]);
    // Too small to split or slice: the token is kept whole.
    should_match(
        "*",
        "{{splitFromLeft(1,0)}}.{{sliceFromRight(1,9)}}",
        "ab",
        &["ab.ab"],
    );
    // Split's separator rule keeps a leading dot after two leading separators.
    should_match("*", "{{split(1,-)}}", "--a", &[".a"]);
    should_match("*", "{{split(1,-)}}", "a--b", &["a.b"]);
    // An empty separator splits into UTF-8 characters, as Go's `strings.Split(s, "")`.
    should_match("*", "x.{{split(1,)}}", "aé", &["x.a.é"]);
    // Partition over several tokens hashes them concatenated.
    let joined = fnv1a_32([b"ab".as_slice()]) % 7;
    should_match("*.*", "{{partition(7,1,2)}}", "a.b", &[&joined.to_string()]);
    // Match refuses non-literal and invalid subjects, except `>` to `>`.
    let mut out = Vec::new();
    let prefix = transform("foo.*", "bar.$1");
    assert_eq!(prefix.apply(b"foo.*", &mut constant(0), &mut out), None);
    assert_eq!(prefix.apply(b"foo..", &mut constant(0), &mut out), None);
    assert_eq!(prefix.apply(b"foo.a.b", &mut constant(0), &mut out), None);
    let identity = transform(">", ">");
    assert_eq!(
        identity.apply(b"a..b", &mut constant(0), &mut out),
        Some(&b"a..b"[..])
    );
    // Random: `rand.Int31() % n`.
    let random = transform("*", "{{random(10)}}");
    let mapped = random.apply(b"x", &mut constant(0xffff_ffff), &mut out);
    assert_eq!(mapped, Some(format!("{}", 0x7fff_ffffu32 % 10).as_bytes()));
}

#[test]
fn patterns_match_like_is_subset_match() {
    let cases: &[(&str, &str, bool)] = &[
        ("foo.*", "foo.bar", true),
        ("foo.*", "foo", false),
        ("foo.*", "foo.bar.baz", false),
        ("foo.*", "foo.*", true),
        ("foo.bar", "foo.*", false),
        ("foo.*", "foo.>", false),
        ("foo.*", "foo.", false),
        ("foo.>", "foo.a.b", true),
        ("foo.>", "foo", false),
        ("foo.>", "foo..b", true),
        ("foo.>", "foo.>", true),
        (">", "a", true),
        ("*.b", "a.b", true),
        ("*.b", "a.c", false),
    ];
    for &(source, subject, expected) in cases {
        assert_eq!(
            Pattern::new(source).matches(subject.as_bytes()),
            expected,
            "{source:?} on {subject:?}"
        );
    }
}

fn destination(subject: &str, weight: u8, cluster: Option<&str>) -> WeightedDestination {
    WeightedDestination {
        subject: subject.into(),
        weight,
        cluster: cluster.map(str::to_owned),
    }
}

fn single(source: &str, destination_subject: &str) -> Mapping {
    Mapping {
        source: source.into(),
        destinations: vec![destination(destination_subject, 100, None)],
    }
}

fn weighted(source: &str, destinations: Vec<WeightedDestination>) -> Mapping {
    Mapping {
        source: source.into(),
        destinations,
    }
}

fn map_once(table: &MappingTable, subject: &str) -> Option<String> {
    let mut out = Vec::new();
    table
        .map(subject.as_bytes(), &mut xorshift(99), &mut out)
        .map(|mapped| String::from_utf8_lossy(mapped).into_owned())
}

#[test]
fn table_maps_what_nats_server_delivered() {
    // The server-level `mappings` block of the end-to-end check, with what 2.15.1 delivered.
    let mappings = [
        single("lit.part", "lp.{{partition(10)}}"),
        single(
            "f.*",
            "f1.{{splitFromLeft(1,3)}}.{{splitFromRight(1,3)}}.{{sliceFromLeft(1,3)}}.{{sliceFromRight(1,3)}}",
        ),
        single(
            "g.*",
            "g1.{{left(1,2)}}.{{right(1,2)}}.{{split(1,-)}}.{{partition(7,1)}}.{{Wildcard(1)}}.$1",
        ),
        single(
            "h.*.*",
            "h1.{{partition(10)}}.{{partition(10,2)}}.{{partition(10,1,2)}}.$0.$2",
        ),
        single("t.>", "t1.>"),
        single("u.*.>", "u1.$1.>"),
    ];
    let table = MappingTable::new(&mappings, None).expect("valid mappings");
    for (subject, expected) in [
        // nats-server: lp.9 or lp.1 depending on Go's map order (see the module doc).
        ("lit.part", Some("lp.9")),
        (
            "f.1234567890",
            Some("f1.123.4567890.1234567.890.123.456.789.0.1.234.567.890"),
        ),
        ("f.ab", Some("f1.ab.ab.ab.ab")),
        (
            "g.abc-def--x",
            Some("g1.ab.-x.abc.def.x.5.abc-def--x.abc-def--x"),
        ),
        ("h.foo.bar", Some("h1.8.2.0.h.bar")),
        ("h.a.b", Some("h1.4.7.6.h.b")),
        ("t.a.b.c", Some("t1.a.b.c")),
        ("u.a.b.c", Some("u1.a.b.c")),
        ("nomatch", None),
        ("t", None),
    ] {
        assert_eq!(map_once(&table, subject).as_deref(), expected, "{subject}");
    }
}

#[test]
fn random_maps_into_its_range() {
    let table = MappingTable::new(&[single("r.*", "r1.{{random(3)}}")], None).unwrap();
    let mut seen = [0u32; 3];
    let mut random = xorshift(5);
    let mut out = Vec::new();
    for _ in 0..3000 {
        let mapped = table.map(b"r.x", &mut random, &mut out).unwrap();
        let digit = mapped.strip_prefix(b"r1.").unwrap();
        seen[(digit[0] - b'0') as usize] += 1;
    }
    assert!(seen.iter().all(|&count| count > 800), "{seen:?}");
}

/// Counts where `draws` publishes to `subject` go ("" = dropped).
fn proportions(table: &MappingTable, subject: &str, draws: u32) -> Vec<(String, u32)> {
    let mut counts: Vec<(String, u32)> = Vec::new();
    let mut random = xorshift(12345);
    let mut out = Vec::new();
    for _ in 0..draws {
        let mapped = table
            .map(subject.as_bytes(), &mut random, &mut out)
            .map(|m| String::from_utf8_lossy(m).into_owned())
            .unwrap_or_else(|| "<unmapped>".into());
        match counts.iter_mut().find(|(s, _)| *s == mapped) {
            Some((_, count)) => *count += 1,
            None => counts.push((mapped, 1)),
        }
    }
    counts.sort();
    counts
}

/// Each count is within 3 points of its percent of `draws`.
#[track_caller]
fn assert_near(counts: &[(String, u32)], expected: &[(&str, u32)], draws: u32) {
    assert_eq!(counts.len(), expected.len(), "{counts:?}");
    for (subject, percent) in expected {
        let count = counts
            .iter()
            .find(|(s, _)| s == subject)
            .unwrap_or_else(|| panic!("{subject} missing in {counts:?}"))
            .1;
        let expected_count = draws * percent / 100;
        let slack = draws * 3 / 100;
        assert!(
            count.abs_diff(expected_count) <= slack,
            "{subject}: {count} of {draws}, expected about {percent}% ({counts:?})"
        );
    }
}

#[test]
fn weights_split_like_nats_server() {
    // nats-server 2.15.1 over 4000 publishes each: w.x -> a.x 1217, b.x 1962, w.x 821;
    // loss -> loss 1580, other 416, 2004 dropped; cl.x unchanged; cl2.x -> main.x 1980,
    // cl2.x 2020.
    let mappings = [
        weighted(
            "w.*",
            vec![destination("a.$1", 30, None), destination("b.$1", 50, None)],
        ),
        weighted(
            "loss",
            vec![
                destination("loss", 40, None),
                destination("other", 10, None),
            ],
        ),
        weighted("cl.*", vec![destination("c1.$1", 100, Some("c1"))]),
        weighted(
            "cl2.*",
            vec![
                destination("c2.$1", 100, Some("c1")),
                destination("main.$1", 50, None),
            ],
        ),
    ];
    let table = MappingTable::new(&mappings, None).unwrap();
    let draws = 10_000;
    let counts = proportions(&table, "w.x", draws);
    assert_near(&counts, &[("a.x", 30), ("b.x", 50), ("w.x", 20)], draws);
    let counts = proportions(&table, "loss", draws);
    assert_near(&counts, &[("loss", 40), ("other", 10), ("", 50)], draws);
    assert_eq!(proportions(&table, "cl.x", 100), vec![("cl.x".into(), 100)]);
    let counts = proportions(&table, "cl2.x", draws);
    assert_near(&counts, &[("main.x", 50), ("cl2.x", 50)], draws);

    // In cluster c1 its own destinations replace the unscoped ones.
    let in_c1 = MappingTable::new(&mappings, Some("c1")).unwrap();
    assert_eq!(proportions(&in_c1, "cl.x", 100), vec![("c1.x".into(), 100)]);
    assert_eq!(
        proportions(&in_c1, "cl2.x", 100),
        vec![("c2.x".into(), 100)]
    );
    // A cluster without scoped destinations uses the unscoped ones.
    let in_c9 = MappingTable::new(&mappings, Some("c9")).unwrap();
    assert_eq!(proportions(&in_c9, "cl.x", 100), vec![("cl.x".into(), 100)]);
}

#[test]
fn weighted_choice_uses_cumulative_sorted_bounds() {
    // Sorted ascending by weight: b (20) covers draws 0..20, a (30) 20..50, the source 50..100.
    let table = MappingTable::new(
        &[weighted(
            "s",
            vec![destination("a", 30, None), destination("b", 20, None)],
        )],
        None,
    )
    .unwrap();
    let at_percent = |percent: u64| ((percent << 32) / 100 + 1) as u32;
    let mut out = Vec::new();
    for (percent, expected) in [
        (0, "b"),
        (19, "b"),
        (20, "a"),
        (49, "a"),
        (50, "s"),
        (99, "s"),
    ] {
        let mapped = table.map(b"s", &mut constant(at_percent(percent)), &mut out);
        assert_eq!(mapped, Some(expected.as_bytes()), "draw {percent}");
    }
    // One destination at 100% draws nothing.
    let table = MappingTable::new(&[single("s", "d")], None).unwrap();
    let mut never = || -> u32 { panic!("drew a random number") };
    assert_eq!(table.map(b"s", &mut never, &mut out), Some(&b"d"[..]));
}

#[test]
fn first_listed_source_wins_and_a_repeated_source_replaces() {
    let table = MappingTable::new(
        &[
            single("ov.*", "star.$1"),
            single("ov.>", "rest.>"),
            single("ov.*", "again.$1"),
        ],
        None,
    )
    .unwrap();
    assert_eq!(map_once(&table, "ov.y").as_deref(), Some("again.y"));
    assert_eq!(map_once(&table, "ov.y.z").as_deref(), Some("rest.y.z"));
}

#[test]
fn table_errors_follow_add_weighted_mappings() {
    let error = |mapping: Mapping| {
        MappingTable::new(&[mapping], None)
            .unwrap_err()
            .1
            .to_string()
    };
    assert_eq!(error(single("foo..x", "bar")), "invalid subject");
    assert_eq!(
        error(weighted(
            "foo.*",
            vec![destination("a.$1", 60, None), destination("b.$1", 50, None)]
        )),
        "total weight needs to be <= 100"
    );
    assert_eq!(
        error(weighted(
            "foo.*",
            vec![destination("a.$1", 60, None), destination("a.$1", 10, None)]
        )),
        "duplicate entry for \"a.$1\""
    );
    assert_eq!(
        error(weighted("foo", vec![destination("a", 101, None)])),
        "individual weights need to be <= 100"
    );
    // Totals are per cluster: 60 + 50 in two clusters is fine.
    MappingTable::new(
        &[weighted(
            "foo.*",
            vec![
                destination("a.$1", 60, Some("c1")),
                destination("b.$1", 50, Some("c2")),
            ],
        )],
        None,
    )
    .expect("per-cluster totals");
    assert_eq!(
        error(single("foo", "")),
        "invalid mapping destination: empty destination subject"
    );
    // The index names the failing mapping.
    let failed = MappingTable::new(&[single("a", "b"), single("c.*", "d.$2")], None);
    assert_eq!(failed.unwrap_err().0, 1);
}

#[test]
fn an_empty_table_maps_nothing_and_a_miss_leaves_the_buffer_alone() {
    let table = MappingTable::default();
    assert!(table.is_empty());
    let mut out = b"untouched".to_vec();
    assert_eq!(table.map(b"foo", &mut constant(0), &mut out), None);
    let table = MappingTable::new(&[single("foo.*", "bar.$1")], None).unwrap();
    assert_eq!(table.map(b"baz.x", &mut constant(0), &mut out), None);
    assert_eq!(out, b"untouched");
}
