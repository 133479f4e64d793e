//! Differential tests: the same raw protocol exchanges against natsring and against the real
//! nats-server 2.15.1 must give identical bytes back (INFO normalized) and the same close.

mod common;

use std::time::Duration;

use common::{
    normalize_info, run_exchange, start, start_reference,
    without_server_pings_bytes as without_server_pings, Raw, EXCHANGE_WAIT as WAIT,
};

/// One exchange: steps in order, each sending bytes on one of several connections, then every
/// connection's output. A step ending in a PING line waits for the PONG so the next step
/// happens after the server processed it; each connection still open at the end is settled
/// the same way (a PING of its own, answered or closed), never by waiting for silence.
struct Case {
    name: &'static str,
    connections: usize,
    steps: &'static [(usize, &'static [u8])],
}

fn run(port: u16, case: &Case) -> Vec<(Vec<u8>, bool)> {
    run_exchange(port, case.connections, case.steps)
}

const CASES: &[Case] = &[
    Case { name: "connect defaults verbose", connections: 1, steps: &[(0, b"CONNECT {}\r\nPING\r\n")] },
    Case {
        name: "verbose pub sub",
        connections: 1,
        steps: &[(0, b"CONNECT {}\r\nSUB foo 1\r\nPUB foo 2\r\nhi\r\nPING\r\n")],
    },
    Case {
        name: "quiet pub sub with reply",
        connections: 1,
        steps: &[(0, b"CONNECT {\"verbose\":false}\r\nSUB foo 1\r\nPUB foo bar 5\r\nhello\r\nPING\r\n")],
    },
    Case {
        name: "ops before connect",
        connections: 1,
        steps: &[(0, b"SUB foo 1\r\nPUB foo 2\r\nhi\r\nPING\r\n")],
    },
    Case {
        name: "case insensitive ops and tabs",
        connections: 1,
        steps: &[(0, b"connect {\"verbose\":false}\r\nsub\tfoo  1\r\npub foo\t2\r\nhi\r\nping\r\n")],
    },
    Case { name: "bare newline", connections: 1, steps: &[(0, b"CONNECT {\"verbose\":false}\nSUB a 1\nPUB a 1\r\nx\r\nPING\r\n")] },
    Case { name: "ping with junk", connections: 1, steps: &[(0, b"PING junk here\r\n")] },
    Case { name: "unknown op", connections: 1, steps: &[(0, b"CONNECT {\"verbose\":false}\r\nFOO bar\r\n")] },
    Case { name: "pub missing size", connections: 1, steps: &[(0, b"CONNECT {\"verbose\":false}\r\nPUB foo\r\n")] },
    Case { name: "pub bad size", connections: 1, steps: &[(0, b"CONNECT {\"verbose\":false}\r\nPUB foo abc\r\n")] },
    Case { name: "sub missing sid", connections: 1, steps: &[(0, b"CONNECT {\"verbose\":false}\r\nSUB foo\r\n")] },
    Case {
        name: "bad payload trailer",
        connections: 1,
        steps: &[(0, b"CONNECT {\"verbose\":false}\r\nPUB foo 2\r\nhiX\r\n")],
    },
    Case {
        name: "max payload",
        connections: 1,
        steps: &[(0, b"CONNECT {\"verbose\":false}\r\nPUB foo 2000000\r\n")],
    },
    Case {
        name: "invalid subject sub stays open",
        connections: 1,
        steps: &[(0, b"CONNECT {\"verbose\":false}\r\nSUB foo..bar 1\r\nSUB foo.>.bar 2\r\nPING\r\n")],
    },
    Case {
        name: "pedantic invalid publish subject",
        connections: 1,
        steps: &[(0, b"CONNECT {\"verbose\":false,\"pedantic\":true}\r\nSUB foo.* 1\r\nPUB foo.* 1\r\nx\r\nPUB foo..x 1\r\ny\r\nPING\r\n")],
    },
    Case {
        name: "verbose pedantic invalid publish subject",
        connections: 1,
        steps: &[(0, b"CONNECT {\"verbose\":true,\"pedantic\":true}\r\nPUB foo.> 1\r\nx\r\nPING\r\n")],
    },
    Case {
        name: "invalid client protocol",
        connections: 1,
        steps: &[(0, b"CONNECT {\"verbose\":false,\"protocol\":2}\r\n")],
    },
    Case {
        name: "no responders without headers",
        connections: 1,
        steps: &[(0, b"CONNECT {\"verbose\":false,\"no_responders\":true}\r\n")],
    },
    Case {
        name: "no responders 503",
        connections: 1,
        steps: &[(
            0,
            b"CONNECT {\"verbose\":false,\"headers\":true,\"no_responders\":true}\r\nSUB _INBOX.x.* 1\r\nPUB svc _INBOX.x.1 2\r\nhi\r\nPING\r\n",
        )],
    },
    Case {
        name: "hpub without headers negotiated",
        connections: 1,
        steps: &[(0, b"CONNECT {\"verbose\":false}\r\nHPUB foo 12 14\r\nNATS/1.0\r\n\r\nhi\r\n")],
    },
    Case {
        name: "hpub delivered as hmsg and stripped for a headerless subscriber",
        connections: 2,
        steps: &[
            (0, b"CONNECT {\"verbose\":false,\"headers\":true}\r\nSUB foo 1\r\nPING\r\n"),
            (1, b"CONNECT {\"verbose\":false}\r\nSUB foo 9\r\nPING\r\n"),
            (0, b"HPUB foo reply 22 24\r\nNATS/1.0\r\nA: b\r\n\r\n\r\nhi\r\nPING\r\n"),
        ],
    },
    Case {
        // Several subscribers of one shard share a rendered frame; each message, with or
        // without headers, must reach each of them with its own sid and nothing of the last.
        name: "fan-out of mixed messages to subscribers with and without headers",
        connections: 4,
        steps: &[
            (0, b"CONNECT {\"verbose\":false,\"headers\":true}\r\nSUB foo.* 1\r\nSUB foo.bar 22\r\nPING\r\n"),
            (1, b"CONNECT {\"verbose\":false}\r\nSUB foo.bar 333\r\nSUB > 4\r\nPING\r\n"),
            (2, b"CONNECT {\"verbose\":false,\"headers\":true}\r\nSUB foo.bar 5 q\r\nPING\r\n"),
            (
                3,
                b"CONNECT {\"verbose\":false,\"headers\":true}\r\nHPUB foo.bar r 22 24\r\nNATS/1.0\r\nA: b\r\n\r\n\r\nhi\r\n\
                  PUB foo.bar 5\r\nhello\r\nPUB foo.baz rr 0\r\n\r\nHPUB foo.bar 12 15\r\nNATS/1.0\r\n\r\nabc\r\n\
                  PUB foo.bar 6\r\nworld!\r\nPING\r\n",
            ),
        ],
    },
    Case {
        name: "hpub header size larger than total",
        connections: 1,
        steps: &[(0, b"CONNECT {\"verbose\":false,\"headers\":true}\r\nHPUB foo 20 10\r\n")],
    },
    Case {
        name: "unsub with max",
        connections: 1,
        steps: &[(
            0,
            b"CONNECT {\"verbose\":false}\r\nSUB foo 1\r\nUNSUB 1 2\r\nPUB foo 1\r\na\r\nPUB foo 1\r\nb\r\nPUB foo 1\r\nc\r\nPING\r\n",
        )],
    },
    Case {
        name: "verbose unsub unknown sid",
        connections: 1,
        steps: &[(0, b"CONNECT {}\r\nUNSUB 42\r\nPING\r\n")],
    },
    Case {
        name: "echo off",
        connections: 2,
        steps: &[
            (0, b"CONNECT {\"verbose\":false,\"echo\":false}\r\nSUB foo 1\r\nPUB foo 4\r\nself\r\nPING\r\n"),
            (1, b"CONNECT {\"verbose\":false}\r\nPUB foo 5\r\nother\r\nPING\r\n"),
            (0, b"PING\r\n"),
        ],
    },
    Case {
        name: "wildcards",
        connections: 1,
        steps: &[(
            0,
            b"CONNECT {\"verbose\":false}\r\nSUB a.* 1\r\nSUB a.> 2\r\nSUB a.b.c 3\r\nPUB a.b 1\r\n1\r\nPUB a.b.c 1\r\n2\r\nPUB b.c 1\r\n3\r\nPING\r\n",
        )],
    },
    Case {
        name: "duplicate sid",
        connections: 1,
        steps: &[(0, b"CONNECT {\"verbose\":false}\r\nSUB foo 1\r\nSUB bar 1\r\nPUB bar 1\r\nx\r\nPUB foo 1\r\ny\r\nPING\r\n")],
    },
    Case {
        name: "async info after first ping",
        connections: 1,
        steps: &[(0, b"CONNECT {\"verbose\":false,\"protocol\":1}\r\nPING\r\nPING\r\n")],
    },
    Case { name: "malformed connect json", connections: 1, steps: &[(0, b"CONNECT {bad\r\n")] },
    // Go's encoding/json folds the long s (U+017F) onto `s` and the Kelvin sign onto `k`.
    Case {
        name: "connect keys fold case like go",
        connections: 1,
        steps: &[(0, "CONNECT {\"verbo\u{17f}e\":false,\"n\u{212a}ey\":\"U\"}\r\nPING\r\n".as_bytes())],
    },
    Case {
        name: "connect lone surrogate escape",
        connections: 1,
        steps: &[(0, b"CONNECT {\"verbose\":false,\"name\":\"\\ud800\"}\r\nPING\r\n")],
    },
    Case {
        name: "connect import with a bad allow list",
        connections: 1,
        steps: &[(0, b"CONNECT {\"verbose\":false,\"import\":{\"allow\":5}}\r\nPING\r\n")],
    },
    Case {
        name: "connect export with unknown keys",
        connections: 1,
        steps: &[(0, b"CONNECT {\"verbose\":false,\"export\":{\"x\":5,\"Deny\":[\"a\",null]}}\r\nPING\r\n")],
    },
    Case { name: "zero length payload", connections: 1, steps: &[(0, b"CONNECT {\"verbose\":false}\r\nSUB z 1\r\nPUB z 0\r\n\r\nPING\r\n")] },
    Case { name: "client sends +OK, -ERR and INFO", connections: 1, steps: &[(0, b"+OK\r\n-ERR 'x'\r\nINFO {}\r\nPING\r\n")] },
    Case {
        name: "hpub with an empty header block is delivered as MSG",
        connections: 2,
        steps: &[
            (1, b"CONNECT {\"verbose\":false}\r\nSUB foo 9\r\nPING\r\n"),
            (0, b"CONNECT {\"verbose\":false,\"headers\":true}\r\nSUB foo 1\r\nHPUB foo 0 2\r\nhi\r\nHPUB foo bar 0 0\r\n\r\nPING\r\n"),
            (1, b"PING\r\n"),
        ],
    },
    // Hostile input: sizes, payload framing, odd bytes, ops a client may not send.
    Case { name: "negative payload size", connections: 1, steps: &[(0, b"CONNECT {\"verbose\":false}\r\nPUB foo -1\r\n")] },
    Case {
        name: "overflowing payload size",
        connections: 1,
        steps: &[(0, b"CONNECT {\"verbose\":false}\r\nPUB foo 99999999999999999999\r\nPING\r\n")],
    },
    Case { name: "ten digit payload size", connections: 1, steps: &[(0, b"CONNECT {\"verbose\":false}\r\nPUB foo 1000000000\r\n")] },
    Case { name: "nine digit payload size over max_payload", connections: 1, steps: &[(0, b"CONNECT {\"verbose\":false}\r\nPUB foo 999999999\r\n")] },
    Case { name: "payload size with a sign", connections: 1, steps: &[(0, b"CONNECT {\"verbose\":false}\r\nPUB foo +2\r\nhi\r\n")] },
    Case {
        name: "hpub negative header size",
        connections: 1,
        steps: &[(0, b"CONNECT {\"verbose\":false,\"headers\":true}\r\nHPUB foo -1 10\r\n")],
    },
    Case {
        name: "hpub overflowing total size",
        connections: 1,
        steps: &[(0, b"CONNECT {\"verbose\":false,\"headers\":true}\r\nHPUB foo 12 99999999999999999999\r\n")],
    },
    Case {
        name: "hpub total over max_payload",
        connections: 1,
        steps: &[(0, b"CONNECT {\"verbose\":false,\"headers\":true}\r\nHPUB foo 12 1048577\r\n")],
    },
    Case {
        name: "payload shorter than announced",
        connections: 1,
        steps: &[(0, b"CONNECT {\"verbose\":false}\r\nSUB foo 1\r\nPUB foo 5\r\nhi\r\nPING\r\n")],
    },
    Case {
        name: "payload longer than announced",
        connections: 1,
        steps: &[(0, b"CONNECT {\"verbose\":false}\r\nSUB foo 1\r\nPUB foo 2\r\nhello\r\nPING\r\n")],
    },
    Case {
        name: "payload followed by the next op without CRLF",
        connections: 1,
        steps: &[(0, b"CONNECT {\"verbose\":false}\r\nSUB foo 1\r\nPUB foo 2\r\nhiPUB foo 2\r\nhi\r\n")],
    },
    Case { name: "payload followed by CR only", connections: 1, steps: &[(0, b"CONNECT {\"verbose\":false}\r\nPUB foo 2\r\nhi\rPING\r\n")] },
    Case { name: "payload followed by LF only", connections: 1, steps: &[(0, b"CONNECT {\"verbose\":false}\r\nPUB foo 2\r\nhi\nPING\r\n")] },
    Case {
        name: "NUL and invalid UTF-8 in PUB and SUB subjects",
        connections: 1,
        steps: &[(0, b"CONNECT {\"verbose\":false}\r\nSUB fo\x00o 1\r\nSUB b\xff\xfe.\xc3\x28 2\r\nPUB fo\x00o 2\r\nhi\r\nPUB b\xff\xfe.\xc3\x28 1\r\nx\r\nPING\r\n")],
    },
    Case {
        name: "NUL and invalid UTF-8 in HPUB subjects",
        connections: 1,
        steps: &[(0, b"CONNECT {\"verbose\":false,\"headers\":true}\r\nSUB a\x00b 1\r\nSUB \xc3\x28 2\r\nHPUB a\x00b 12 14\r\nNATS/1.0\r\n\r\nhi\r\nHPUB \xc3\x28 r\xff 12 12\r\nNATS/1.0\r\n\r\n\r\nPING\r\n")],
    },
    Case {
        name: "NUL and invalid UTF-8 in subjects, verbose and pedantic",
        connections: 1,
        steps: &[(0, b"CONNECT {\"verbose\":true,\"pedantic\":true}\r\nSUB a\x00b 1\r\nSUB \xff 2\r\nPUB a\x00b 1\r\nx\r\nPUB \xff 1\r\ny\r\nPING\r\n")],
    },
    Case {
        name: "NUL in a sid",
        connections: 1,
        steps: &[(0, b"CONNECT {\"verbose\":false}\r\nSUB foo 1\x002\r\nPUB foo 1\r\nx\r\nUNSUB 1\x002\r\nPUB foo 1\r\ny\r\nPING\r\n")],
    },
    Case { name: "NUL as an op byte", connections: 1, steps: &[(0, b"\x00PING\r\n")] },
    Case { name: "empty line", connections: 1, steps: &[(0, b"\r\nPING\r\n")] },
    Case { name: "blanks only", connections: 1, steps: &[(0, b"\t \r\n")] },
    Case { name: "MSG from a client", connections: 1, steps: &[(0, b"CONNECT {\"verbose\":false}\r\nMSG foo 1 2\r\nhi\r\n")] },
    Case { name: "RS+ from a client", connections: 1, steps: &[(0, b"CONNECT {\"verbose\":false}\r\nRS+ $G foo\r\n")] },
    Case { name: "RMSG from a client", connections: 1, steps: &[(0, b"CONNECT {\"verbose\":false}\r\nRMSG $G foo 2\r\nhi\r\n")] },
    Case { name: "LS+ from a client", connections: 1, steps: &[(0, b"CONNECT {\"verbose\":false}\r\nLS+ $G foo\r\n")] },
    Case { name: "A+ from a client", connections: 1, steps: &[(0, b"CONNECT {\"verbose\":false}\r\nA+ foo\r\n")] },
    Case { name: "SUB with too many args", connections: 1, steps: &[(0, b"CONNECT {\"verbose\":false}\r\nSUB a b c d\r\n")] },
    Case { name: "PUB with too many args", connections: 1, steps: &[(0, b"CONNECT {\"verbose\":false}\r\nPUB a b c 1\r\nx\r\n")] },
    Case { name: "UNSUB without args", connections: 1, steps: &[(0, b"CONNECT {\"verbose\":false}\r\nUNSUB\r\n")] },
    Case { name: "UNSUB with too many args", connections: 1, steps: &[(0, b"CONNECT {\"verbose\":false}\r\nUNSUB 1 2 3\r\n")] },
    Case { name: "UNSUB with a negative max", connections: 1, steps: &[(0, b"CONNECT {\"verbose\":false}\r\nSUB foo 1\r\nUNSUB 1 -5\r\nPUB foo 1\r\nx\r\nPING\r\n")] },
    Case { name: "CONNECT without args", connections: 1, steps: &[(0, b"CONNECT\r\n")] },
    Case { name: "CONNECT with a non-object", connections: 1, steps: &[(0, b"CONNECT []\r\n")] },
    Case { name: "CONNECT with a mistyped field", connections: 1, steps: &[(0, b"CONNECT {\"verbose\":\"yes\"}\r\n")] },
    Case { name: "CONNECT naming an account", connections: 1, steps: &[(0, b"CONNECT {\"verbose\":false,\"account\":\"A\"}\r\n")] },
    Case { name: "HPUB header block without NATS/1.0", connections: 1, steps: &[(0, b"CONNECT {\"verbose\":false,\"headers\":true}\r\nSUB foo 1\r\nHPUB foo 2 4\r\nabhi\r\nPING\r\n")] },
];

#[test]
fn natsring_matches_nats_server_byte_for_byte() {
    let ours = start();
    let reference = start_reference(&[]);
    let mut failures = Vec::new();
    for case in CASES {
        let expected = run(reference.port, case);
        let got = run(ours.port, case);
        if expected != got {
            failures.push(format!(
                "case {:?}\n  nats-server: {:?}\n  natsring:    {:?}",
                case.name,
                expected
                    .iter()
                    .map(|(b, c)| (String::from_utf8_lossy(b).into_owned(), *c))
                    .collect::<Vec<_>>(),
                got.iter()
                    .map(|(b, c)| (String::from_utf8_lossy(b).into_owned(), *c))
                    .collect::<Vec<_>>(),
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases differ:\n{}",
        failures.len(),
        CASES.len(),
        failures.join("\n")
    );
}

#[test]
fn control_line_limit_matches() {
    let ours = start();
    let reference = start_reference(&[]);
    // A SUB whose control line is exactly at, and just over, the limit.
    for extra in [0usize, 1, 2, 100] {
        let subject_len = 4096 - "SUB  1\r\n".len() + extra;
        let line = format!("SUB {} 1\r\nPING\r\n", "a".repeat(subject_len));
        let run_one = |port: u16| {
            let mut raw = Raw::connect(port);
            let mut out = raw.read_until(b"\r\n", WAIT);
            raw.send(b"CONNECT {\"verbose\":false}\r\n");
            raw.send(line.as_bytes());
            let (rest, closed) = raw.settle_after(line.as_bytes(), WAIT);
            out.extend_from_slice(&rest);
            (
                String::from_utf8_lossy(&normalize_info(&without_server_pings(out))).into_owned(),
                closed,
            )
        };
        assert_eq!(
            run_one(ours.port),
            run_one(reference.port),
            "control line of limit + {extra}"
        );
    }
}

/// A payload that arrives in pieces and is followed by a wrong byte where its `\r\n` starts:
/// nats-server fails on that byte at once, without waiting for another. Nothing is sent after
/// it, so a server that waited for the op's last byte would never answer and the wait would
/// end by its bound with the connection open. (The short pause between writes makes separate
/// reads likely; the outcome must be the same either way.)
#[test]
fn a_wrong_byte_after_a_carried_payload_fails_at_once() {
    let ours = start();
    let reference = start_reference(&[]);
    let run_one = |port: u16| {
        let mut raw = Raw::connect(port);
        let mut out = raw.read_until(b"\r\n", WAIT);
        raw.send(b"CONNECT {\"verbose\":false}\r\nPUB foo 1\r\n");
        std::thread::sleep(Duration::from_millis(20));
        raw.send(b"x");
        std::thread::sleep(Duration::from_millis(20));
        raw.send(b"X");
        let (rest, closed) = raw.read_until_close_within(WAIT);
        out.extend_from_slice(&rest);
        (
            String::from_utf8_lossy(&normalize_info(&without_server_pings(out))).into_owned(),
            closed,
        )
    };
    let expected = run_one(reference.port);
    assert!(expected.1, "nats-server closes: {expected:?}");
    assert_eq!(run_one(ours.port), expected);
}
