//! Tests of the route parser, reader, writers and JSON, with the bytes of ROUTES.md §1, §4, §5
//! and §7 (captured from nats-server 2.15.1).

use proptest::prelude::*;

use super::*;
use crate::proto::error::CloseReason;
use crate::proto::message::Message;
use crate::proto::reader::Flow;

fn legacy() -> RouteParser {
    RouteParser {
        headers: true,
        ..RouteParser::new(4096)
    }
}

fn dedicated() -> RouteParser {
    RouteParser {
        accounts: false,
        ..legacy()
    }
}

fn op<'a>(parser: &RouteParser, input: &'a [u8]) -> RouteOp<'a> {
    match parser.parse(input) {
        RouteStep::Op(op, used) => {
            assert_eq!(used, input.len(), "{:?}", String::from_utf8_lossy(input));
            op
        }
        other => panic!("{:?}: {other:?}", String::from_utf8_lossy(input)),
    }
}

fn error(parser: &RouteParser, input: &[u8]) -> RouteError {
    match parser.parse(input) {
        RouteStep::Error(error) => error,
        other => panic!("{:?}: {other:?}", String::from_utf8_lossy(input)),
    }
}

fn interest<'a>(
    added: bool,
    account: Option<&'a [u8]>,
    subject: &'a [u8],
    queue: Option<&'a [u8]>,
    weight: u32,
) -> RouteOp<'a> {
    RouteOp::Interest {
        added,
        leaf: false,
        leaf_origin: None,
        account,
        subject,
        queue,
        weight,
    }
}

fn routed<'a>(
    account: Option<&'a [u8]>,
    subject: &'a [u8],
    reply: Option<&'a [u8]>,
    headers: Option<&'a [u8]>,
    payload: &'a [u8],
    queues: &'a [u8],
) -> RouteOp<'a> {
    RouteOp::Message(RoutedMessage {
        origin: None,
        account,
        message: Message {
            subject,
            reply,
            headers,
            payload,
        },
        queues: Queues::new(queues),
    })
}

#[test]
fn interest_lines_of_section_4() {
    let p = legacy();
    let g = Some(&b"$G"[..]);
    assert_eq!(
        op(&p, b"RS+ $G foo\r\n"),
        interest(true, g, b"foo", None, 0)
    );
    assert_eq!(
        op(&p, b"RS+ $G bar q1 1\r\n"),
        interest(true, g, b"bar", Some(b"q1"), 1)
    );
    assert_eq!(
        op(&p, b"RS+ $G bar q1 2\r\n"),
        interest(true, g, b"bar", Some(b"q1"), 2)
    );
    assert_eq!(
        op(&p, b"RS+ $G wild.>\r\n"),
        interest(true, g, b"wild.>", None, 0)
    );
    assert_eq!(
        op(&p, b"RS- $G bar q1\r\n"),
        interest(false, g, b"bar", Some(b"q1"), 0)
    );
    assert_eq!(
        op(&p, b"RS- $G foo\r\n"),
        interest(false, g, b"foo", None, 0)
    );
    assert_eq!(
        op(&p, b"RS+ $G remote.q qq 5\r\n"),
        interest(true, g, b"remote.q", Some(b"qq"), 5)
    );
    // The $SYS dump on a legacy link, and on the dedicated $SYS connection.
    assert_eq!(
        op(&p, b"RS+ $SYS $SYS.SERVER.*.SHUTDOWN\r\n"),
        interest(true, Some(b"$SYS"), b"$SYS.SERVER.*.SHUTDOWN", None, 0)
    );
    assert_eq!(
        op(&dedicated(), b"RS+ $SYS.SERVER.ACCOUNT.*.CONNS\r\n"),
        interest(true, None, b"$SYS.SERVER.ACCOUNT.*.CONNS", None, 0)
    );
    assert_eq!(
        op(&dedicated(), b"RS+ _R_.QcUWhJ.>\r\n"),
        interest(true, None, b"_R_.QcUWhJ.>", None, 0)
    );
    assert_eq!(
        op(&dedicated(), b"RS- x\r\n"),
        interest(false, None, b"x", None, 0)
    );
    // UNSUB on a route is an RS- (nats-server's UNSUB_ARG calls processRemoteUnsub).
    assert_eq!(
        op(&p, b"UNSUB $G foo\r\n"),
        interest(false, g, b"foo", None, 0)
    );
    // A weight that is not a size is not an error (Go stores -1 and uses 1).
    assert_eq!(
        op(&p, b"RS+ $G foo q x\r\n"),
        interest(true, g, b"foo", Some(b"q"), 0)
    );
}

#[test]
fn leaf_interest_lines_of_section_4() {
    let p = legacy();
    let leaf = |added, origin, subject, queue, weight| RouteOp::Interest {
        added,
        leaf: true,
        leaf_origin: origin,
        account: Some(&b"ACC2"[..]),
        subject,
        queue,
        weight,
    };
    assert_eq!(
        op(&p, b"LS+ L ACC2 leafsub\r\n"),
        leaf(true, Some(&b"L"[..]), &b"leafsub"[..], None, 0)
    );
    assert_eq!(
        op(&p, b"LS+ L ACC2 leafq lq 1\r\n"),
        leaf(true, Some(b"L"), b"leafq", Some(&b"lq"[..]), 1)
    );
    let with_origin = RouteParser {
        leaf_unsub_origin: true,
        ..legacy()
    };
    assert_eq!(
        op(&with_origin, b"LS- L ACC2 leafsub\r\n"),
        leaf(false, Some(b"L"), b"leafsub", None, 0)
    );
    assert_eq!(
        op(&with_origin, b"LS- L ACC2 leafq lq\r\n"),
        leaf(false, Some(b"L"), b"leafq", Some(b"lq"), 0)
    );
    // Without lnocu the peer sends LS- without the origin.
    assert_eq!(
        op(&p, b"LS- ACC2 leafsub\r\n"),
        leaf(false, None, b"leafsub", None, 0)
    );
    assert_eq!(
        op(&p, b"LS+ _ ACC2 leafsub\r\n"),
        leaf(true, Some(b"_"), b"leafsub", None, 0)
    );
    assert_eq!(error(&with_origin, b"LS- \r\n"), RouteError::ParseError);
}

#[test]
fn message_lines_of_section_5() {
    let p = legacy();
    let g = Some(&b"$G"[..]);
    assert_eq!(
        op(&p, b"RMSG $G foo 5\r\nhello\r\n"),
        routed(g, b"foo", None, None, b"hello", b"")
    );
    assert_eq!(
        op(&p, b"RMSG $G foo _INBOX.r1 5\r\nhello\r\n"),
        routed(g, b"foo", Some(b"_INBOX.r1"), None, b"hello", b"")
    );
    assert_eq!(
        op(
            &p,
            b"HMSG $G foo _INBOX.r2 20 25\r\nNATS/1.0\r\nX-K: v\r\n\r\nhello\r\n"
        ),
        routed(
            g,
            b"foo",
            Some(b"_INBOX.r2"),
            Some(b"NATS/1.0\r\nX-K: v\r\n\r\n"),
            b"hello",
            b""
        )
    );
    assert_eq!(
        op(&p, b"RMSG $G bar | q1 q2 3\r\nabc\r\n"),
        routed(g, b"bar", None, None, b"abc", b"q1 q2")
    );
    assert_eq!(
        op(&p, b"RMSG $G bar + _INBOX.r3 q1 q2 3\r\nabc\r\n"),
        routed(g, b"bar", Some(b"_INBOX.r3"), None, b"abc", b"q1 q2")
    );
    assert_eq!(
        op(&p, b"RMSG $G mix | q1 2\r\nab\r\n"),
        routed(g, b"mix", None, None, b"ab", b"q1")
    );
    assert_eq!(
        op(
            &p,
            b"HMSG $G bar | q1 q2 20 23\r\nNATS/1.0\r\nX-K: v\r\n\r\nabc\r\n"
        ),
        routed(
            g,
            b"bar",
            None,
            Some(b"NATS/1.0\r\nX-K: v\r\n\r\n"),
            b"abc",
            b"q1 q2"
        )
    );
    // `+` with a reply and no queue names.
    assert_eq!(
        op(&p, b"RMSG $G foo + r 1\r\nx\r\n"),
        routed(g, b"foo", Some(b"r"), None, b"x", b"")
    );
    // Four fields: the third is a reply, whatever it is.
    assert_eq!(
        op(&p, b"RMSG $G foo | 1\r\nx\r\n"),
        routed(g, b"foo", Some(b"|"), None, b"x", b"")
    );
    // JetStream delivery and ack.
    let jetstream =
        b"RMSG $G _INBOX.TAtN $JS.ACK.S1.d1.1.1.1.1796226511193861806.2@s1.x 2\r\nm0\r\n";
    assert_eq!(
        op(&p, jetstream),
        routed(
            g,
            b"_INBOX.TAtN",
            Some(b"$JS.ACK.S1.d1.1.1.1.1796226511193861806.2@s1.x"),
            None,
            b"m0",
            b""
        )
    );
    assert_eq!(
        op(
            &p,
            b"RMSG $G $JS.ACK.S1.d1.1.1.1.1796226511193861806.2 0\r\n\r\n"
        ),
        routed(
            g,
            b"$JS.ACK.S1.d1.1.1.1.1796226511193861806.2",
            None,
            None,
            b"",
            b""
        )
    );
    // Dedicated account connections.
    let d = dedicated();
    assert_eq!(
        op(&d, b"RMSG x r.1 2\r\nhi\r\n"),
        routed(None, b"x", Some(b"r.1"), None, b"hi", b"")
    );
    let headers = b"NATS/1.0\r\nA: bcd\r\n\r\n";
    assert_eq!(headers.len(), 20);
    let mut hmsg = b"HMSG x 20 22\r\n".to_vec();
    hmsg.extend_from_slice(headers);
    hmsg.extend_from_slice(b"hi\r\n");
    assert_eq!(
        op(&d, &hmsg),
        routed(None, b"x", None, Some(headers), b"hi", b"")
    );
    assert_eq!(
        op(&d, b"RMSG s | q1 q2 1\r\nx\r\n"),
        routed(None, b"s", None, None, b"x", b"q1 q2")
    );
}

#[test]
fn leaf_messages() {
    let lmsg = |origin, account, subject, reply, headers, payload, queues| {
        RouteOp::Message(RoutedMessage {
            origin: Some(origin),
            account,
            message: Message {
                subject,
                reply,
                headers: Some(headers),
                payload,
            },
            queues: Queues::new(queues),
        })
    };
    let p = legacy();
    let acc = Some(&b"ACC2"[..]);
    assert_eq!(
        op(&p, b"LMSG L ACC2 fromleaf 0 4\r\nleaf\r\n"),
        lmsg(
            &b"L"[..],
            acc,
            &b"fromleaf"[..],
            None,
            &b""[..],
            &b"leaf"[..],
            &b""[..]
        )
    );
    assert_eq!(
        op(&p, b"LMSG L ACC2 s + r q1 0 1\r\nx\r\n"),
        lmsg(b"L", acc, b"s", Some(&b"r"[..]), b"", b"x", b"q1")
    );
    assert_eq!(
        op(&p, b"LMSG L ACC2 s r 0 1\r\nx\r\n"),
        lmsg(b"L", acc, b"s", Some(b"r"), b"", b"x", b"")
    );
    assert_eq!(
        op(&dedicated(), b"LMSG L s 0 1\r\nx\r\n"),
        lmsg(b"L", None, b"s", None, b"", b"x", b"")
    );
    // LMSG always has a header size.
    assert_eq!(
        error(&p, b"LMSG L ACC2 s 1\r\nx\r\n"),
        RouteError::ParseError
    );
}

#[test]
fn handshake_and_keepalive_lines() {
    let p = legacy();
    let info = b"INFO {\"server_id\":\"NARC\",\"cluster\":\"c1\"} \r\n";
    assert_eq!(
        op(&p, info),
        RouteOp::Info {
            json: b"{\"server_id\":\"NARC\",\"cluster\":\"c1\"} "
        }
    );
    assert_eq!(
        op(&p, b"CONNECT {\"echo\":true}\r\n"),
        RouteOp::Connect {
            json: b"{\"echo\":true}"
        }
    );
    assert_eq!(op(&p, b"PING\r\n"), RouteOp::Ping);
    assert_eq!(op(&p, b"PONG\r\n"), RouteOp::Pong);
    assert_eq!(op(&p, b"+OK\r\n"), RouteOp::Ok);
    assert_eq!(
        op(&p, b"-ERR 'Stale Connection'\r\n"),
        RouteOp::Err {
            text: b"'Stale Connection'"
        }
    );
}

#[test]
fn ops_nats_server_ignores_on_a_route() {
    let p = legacy();
    for input in [
        &b"SUB foo 1\r\n"[..],
        b"SUB anything at all here\r\n",
        b"PUB foo 5\r\nhello\r\n",
        b"PUB foo r 0\r\n\r\n",
        b"HPUB foo 12 14\r\nNATS/1.0\r\n\r\nhi\r\n",
        b"A+ $G\r\n",
        b"A- $G\r\n",
        b"Au $G\r\n",
    ] {
        assert_eq!(op(&p, input), RouteOp::Ignored, "{input:?}");
    }
    // PUB on a route has no payload limit.
    let mut big = b"PUB foo 2000000\r\n".to_vec();
    big.extend(std::iter::repeat_n(b'x', 2_000_000));
    big.extend_from_slice(b"\r\n");
    assert_eq!(op(&p, &big), RouteOp::Ignored);
    // HPUB without negotiated headers closes, as from a client.
    let no_headers = RouteParser::new(4096);
    assert_eq!(
        error(&no_headers, b"HPUB foo 12 14\r\nNATS/1.0\r\n\r\nhi\r\n"),
        RouteError::ParseError
    );
    // HMSG is parsed whatever `headers` says.
    assert!(matches!(
        no_headers.parse(b"HMSG $G foo 12 14\r\nNATS/1.0\r\n\r\nhi\r\n"),
        RouteStep::Op(RouteOp::Message(_), 35)
    ));
    assert_eq!(error(&p, b"PUB foo\r\n"), RouteError::ParseError);
    assert_eq!(error(&p, b"AU $G\r\n"), RouteError::UnknownOp);
}

#[test]
fn error_rows_of_section_7() {
    let p = legacy();
    // Unknown op, bare RS+, MSG (a client-to-server op nats-server refuses on routes).
    for input in [
        &b"FOO bar\r\n"[..],
        b"RS+\r\n",
        b"RS*",
        b"MSG foo 1 2\r\n",
        b"RX",
        b"LQ",
    ] {
        assert_eq!(error(&p, input), RouteError::UnknownOp, "{input:?}");
    }
    assert_eq!(
        RouteError::UnknownOp.wire().unwrap(),
        b"-ERR 'Unknown Protocol Operation'\r\n"
    );
    // Payload longer than its size: the byte after it is not `\r`.
    assert_eq!(
        error(&p, b"RMSG $G foo 2\r\nabc\r\n"),
        RouteError::UnknownOp
    );
    assert_eq!(error(&p, b"RMSG $G foo 2\r\nab\rX"), RouteError::UnknownOp);
    // Silent closes: wrong counts, queue RS+ without weight, bad sizes and indicators.
    for input in [
        &b"RS+ $G foo q\r\n"[..],
        b"RS+ $G\r\n",
        b"RS+ $G a b c d\r\n",
        b"RS+ \r\n",
        b"RS- $G a b c\r\n",
        b"RS- $G\r\n",
        b"UNSUB $G a b c\r\n",
        b"RMSG $G foo x\r\n",
        b"RMSG $G foo\r\n",
        b"RMSG $G foo r 1234567890\r\n",
        b"RMSG $G foo ? q 3\r\n",
        b"RMSG $G foo ++ r q 3\r\n",
        b"HMSG $G foo 5 3\r\n",
        b"HMSG $G foo 3\r\n",
        b"HMSG $G foo x 3\r\n",
        b"RMSG $G foo + r q -1\r\n",
    ] {
        assert_eq!(error(&p, input), RouteError::ParseError, "{input:?}");
    }
    assert_eq!(
        error(&dedicated(), b"RS+ foo q\r\n"),
        RouteError::ParseError
    );
    assert_eq!(error(&dedicated(), b"RMSG foo\r\n"), RouteError::ParseError);
    assert_eq!(RouteError::ParseError.wire(), None);
}

#[test]
fn control_line_limit_is_sixteen_times() {
    let p = RouteParser {
        max_control_line: 64,
        ..legacy()
    };
    assert_eq!(RouteParser::new(4096).max_control_line, 65536);
    assert_eq!(route_control_line_limit(u32::MAX), u32::MAX);
    let line = |len: usize| {
        let mut line = b"RS+ $G ".to_vec();
        line.extend(std::iter::repeat_n(b'a', len - 3));
        line
    };
    let mut ok = line(64);
    ok.extend_from_slice(b"\r\n");
    assert!(matches!(p.parse(&ok), RouteStep::Op(..)));
    let mut long = line(65);
    assert_eq!(error(&p, &long), RouteError::MaxControlLine);
    long.extend_from_slice(b"\r\n");
    assert_eq!(error(&p, &long), RouteError::MaxControlLine);
    assert_eq!(
        RouteError::MaxControlLine.wire().unwrap(),
        b"-ERR 'maximum control line exceeded'\r\n"
    );
}

#[test]
fn connect_first_on_an_accepted_route() {
    let p = RouteParser {
        awaiting_connect: true,
        ..legacy()
    };
    for input in [&b"RS+ $G foo\r\n"[..], b"INFO {}\r\n", b"P", b"FOO"] {
        assert_eq!(
            error(&p, input),
            RouteError::AuthorizationViolation,
            "{input:?}"
        );
    }
    assert_eq!(p.parse_rmsg(b"RMSG $G foo 1\r\nx\r\n"), None);
    assert_eq!(op(&p, b"connect {}\r\n"), RouteOp::Connect { json: b"{}" });
    assert_eq!(error(&p, b"CX"), RouteError::UnknownOp);
}

#[test]
fn op_names_are_case_insensitive() {
    let p = legacy();
    let g = Some(&b"$G"[..]);
    assert_eq!(op(&p, b"rs+ $G x\r\n"), interest(true, g, b"x", None, 0));
    assert_eq!(op(&p, b"rS- $G x\r\n"), interest(false, g, b"x", None, 0));
    assert_eq!(op(&p, b"ping\r\n"), RouteOp::Ping);
    assert_eq!(op(&p, b"pOnG\r\n"), RouteOp::Pong);
    assert_eq!(op(&p, b"+ok\r\n"), RouteOp::Ok);
    assert_eq!(op(&p, b"-err x\r\n"), RouteOp::Err { text: b"x" });
    assert_eq!(op(&p, b"info {}\r\n"), RouteOp::Info { json: b"{}" });
    assert_eq!(
        op(&p, b"rmsg $G x 1\r\ny\r\n"),
        routed(g, b"x", None, None, b"y", b"")
    );
    assert_eq!(
        op(&p, b"hMsG $G x 0 1\r\ny\r\n"),
        routed(g, b"x", None, Some(b""), b"y", b"")
    );
    assert!(matches!(
        op(&p, b"lmsg o $G x 0 1\r\ny\r\n"),
        RouteOp::Message(RoutedMessage {
            origin: Some(b"o"),
            ..
        })
    ));
    assert!(matches!(
        op(&p, b"ls+ o $G x\r\n"),
        RouteOp::Interest { leaf: true, .. }
    ));
    assert_eq!(op(&p, b"sub x 1\r\n"), RouteOp::Ignored);
    assert_eq!(op(&p, b"unsub $G x\r\n"), interest(false, g, b"x", None, 0));
    assert_eq!(op(&p, b"a+ x\r\n"), RouteOp::Ignored);
}

#[test]
fn bare_newlines_tabs_and_runs_of_blanks() {
    let p = legacy();
    let g = Some(&b"$G"[..]);
    assert_eq!(op(&p, b"PING\n"), RouteOp::Ping);
    assert_eq!(op(&p, b"RS+ $G foo\n"), interest(true, g, b"foo", None, 0));
    assert_eq!(
        op(&p, b"RS+\t$G \t foo\tq  3\n"),
        interest(true, g, b"foo", Some(b"q"), 3)
    );
    assert_eq!(
        op(&p, b"RMSG $G foo 1\nx\r\n"),
        routed(g, b"foo", None, None, b"x", b"")
    );
    assert_eq!(
        op(&p, b"RMSG  $G\tfoo \t|  q1\tq2  1 \r\nx\r\n"),
        routed(g, b"foo", None, None, b"x", b"q1 q2")
    );
    assert_eq!(op(&p, b"INFO {}\n"), RouteOp::Info { json: b"{}" });
}

#[test]
fn queues_iterate_names() {
    let queues = Queues::new(b"  q1\tq2 \r q3");
    assert_eq!(queues.collect::<Vec<_>>(), [&b"q1"[..], b"q2", b"q3"]);
    assert!(Queues::NONE.is_empty());
    assert!(Queues::new(b" \t").is_empty());
    assert!(!queues.is_empty());
    assert_eq!(queues, Queues::new(b"q1 q2 q3"));
    assert_ne!(queues, Queues::new(b"q1 q2"));
    assert_eq!(format!("{queues:?}"), "[\"q1\", \"q2\", \"q3\"]");
}

#[test]
fn pending_says_how_much_is_needed() {
    let p = legacy();
    assert_eq!(p.parse(b""), RouteStep::Pending { needed: None });
    assert_eq!(p.parse(b"RS+ $G fo"), RouteStep::Pending { needed: None });
    assert_eq!(
        p.parse(b"RMSG $G foo 5\r\nhel"),
        RouteStep::Pending { needed: Some(22) }
    );
    assert_eq!(
        p.parse(b"HMSG $G foo 2 5\r\n"),
        RouteStep::Pending { needed: Some(24) }
    );
}

/// A handler that records every op as text, and whether it came by the fast path.
struct Recorder {
    ops: Vec<String>,
    fast: usize,
}

impl RouteHandler for Recorder {
    fn op(&mut self, op: RouteOp<'_>, used: usize, parser: &mut RouteParser) -> Flow {
        if let RouteOp::Connect { .. } = op {
            parser.awaiting_connect = false;
        }
        self.ops.push(format!("{op:?}/{used}"));
        Flow::Continue
    }

    fn message(&mut self, message: RoutedMessage<'_>, used: usize, _: &mut RouteParser) -> Flow {
        self.fast += 1;
        assert!(message.queues.is_empty() && message.message.headers.is_none());
        self.ops
            .push(format!("{:?}/{used}", RouteOp::Message(message)));
        Flow::Continue
    }
}

/// The ops `parser`'s reader finds in `chunks`, fed one after the other.
fn feed(parser: &RouteParser, chunks: &[&[u8]]) -> (Vec<String>, usize) {
    let mut reader = RouteReader::new(parser.clone());
    let mut recorder = Recorder {
        ops: Vec::new(),
        fast: 0,
    };
    for chunk in chunks {
        assert_eq!(reader.feed(chunk, &mut recorder), RouteFed::Done);
    }
    assert_eq!(reader.carried_bytes(), 0, "nothing left over");
    (recorder.ops, recorder.fast)
}

fn mixed_stream() -> Vec<u8> {
    let mut stream = Vec::new();
    stream.extend_from_slice(b"CONNECT {\"echo\":true,\"cluster\":\"c1\"}\r\n");
    stream.extend_from_slice(b"INFO {\"server_id\":\"N\"} \r\nPING\r\nPONG\r\n+OK\r\n");
    stream.extend_from_slice(b"RS+ $G foo\r\nRS+ $G bar q1 1\r\nrs- $G bar q1\r\n");
    stream.extend_from_slice(b"LS+ L ACC2 leafq lq 1\r\nLS- ACC2 leafsub\n");
    stream.extend_from_slice(b"RMSG $G foo 5\r\nhello\r\nRMSG $G foo _INBOX.r1 5\r\nhello\r\n");
    stream.extend_from_slice(b"HMSG $G foo _INBOX.r2 20 25\r\nNATS/1.0\r\nX-K: v\r\n\r\nhello\r\n");
    stream.extend_from_slice(b"RMSG $G bar | q1 q2 3\r\nabc\r\n");
    stream.extend_from_slice(b"RMSG $G bar + _INBOX.r3 q1 q2 3\r\nabc\r\n");
    stream.extend_from_slice(b"LMSG L ACC2 fromleaf 0 4\r\nleaf\r\n");
    stream.extend_from_slice(b"SUB x 1\r\nPUB x 2\r\nab\r\nUNSUB $G foo\r\n");
    stream.extend_from_slice(b"RMSG $G a 6\r\n\r\nPING\r\nrmsg\t$G b 0\n\r\n-ERR 'x'\r\n");
    stream
}

#[test]
fn split_at_every_offset_gives_the_same_ops() {
    let p = RouteParser {
        awaiting_connect: true,
        ..legacy()
    };
    let stream = mixed_stream();
    let (whole, fast) = feed(&p, &[&stream]);
    assert_eq!(whole.len(), 22, "{whole:#?}");
    assert_eq!(fast, 3, "plain RMSGs take the fast path");
    for cut in 0..=stream.len() {
        let (first, second) = stream.split_at(cut);
        assert_eq!(feed(&p, &[first, second]).0, whole, "cut at {cut}");
    }
    for cut in 0..stream.len() {
        let (first, rest) = stream.split_at(cut);
        let (second, third) = rest.split_at(rest.len().min(5));
        assert_eq!(
            feed(&p, &[first, second, third]).0,
            whole,
            "cuts at {cut}, +5"
        );
    }
    let bytes: Vec<&[u8]> = stream.chunks(1).collect();
    assert_eq!(feed(&p, &bytes).0, whole, "byte by byte");
}

#[test]
fn reader_pauses_stops_and_errors() {
    struct Answer(Flow, usize);
    impl RouteHandler for Answer {
        fn op(&mut self, _: RouteOp<'_>, _: usize, _: &mut RouteParser) -> Flow {
            self.1 += 1;
            self.0
        }
    }
    let stream = b"RMSG $G a 1\r\nx\r\nPING\r\n";
    let mut reader = RouteReader::new(legacy());
    let mut pause = Answer(Flow::Pause, 0);
    assert_eq!(
        reader.feed(stream, &mut pause),
        RouteFed::Paused { left: 6 }
    );
    assert_eq!(reader.feed(&stream[16..], &mut pause), RouteFed::Done);
    assert_eq!(pause.1, 2);
    let mut stop = Answer(Flow::Stop, 0);
    assert_eq!(reader.feed(stream, &mut stop), RouteFed::Stopped);
    // A carried op, paused on.
    assert_eq!(
        reader.feed(b"RMSG $G a 3\r\nab", &mut pause),
        RouteFed::Done
    );
    assert_eq!(reader.carried_bytes(), 15);
    assert_eq!(
        reader.feed(b"c\r\nPING\r\n", &mut pause),
        RouteFed::Paused { left: 6 }
    );
    assert_eq!(reader.carried_bytes(), 0);
    // A bad trailer fails as its byte arrives.
    let mut go_on = Answer(Flow::Continue, 0);
    assert_eq!(reader.feed(b"RMSG $G a 1\r\n", &mut go_on), RouteFed::Done);
    assert_eq!(
        reader.feed(b"xX", &mut go_on),
        RouteFed::Error(RouteError::UnknownOp)
    );
}

/// Every `RMSG ` followed by up to 6 bytes of a small alphabet and one of a few tails: when
/// `parse_rmsg` answers, `parse` gives the same operation.
#[test]
fn parse_rmsg_agrees_with_parse_exhaustively() {
    let alphabet = b" \t\r\na10";
    for parser in [legacy(), dedicated()] {
        let mut taken = 0u64;
        for len in 0..=6u32 {
            for mut n in 0..(alphabet.len() as u64).pow(len) {
                let mut input = b"RMSG ".to_vec();
                for _ in 0..len {
                    input.push(alphabet[(n % alphabet.len() as u64) as usize]);
                    n /= alphabet.len() as u64;
                }
                let tails = [
                    &b""[..],
                    b"\r\n",
                    b"\r\n\r\n",
                    b" 0\r\n\r\n",
                    b"\r\nx\r\nPING\r\n",
                    b"0\r\n\r\n",
                ];
                for tail in tails {
                    let mut whole = input.clone();
                    whole.extend_from_slice(tail);
                    if let Some((message, used)) = parser.parse_rmsg(&whole) {
                        taken += 1;
                        assert_eq!(
                            parser.parse(&whole),
                            RouteStep::Op(RouteOp::Message(message), used),
                            "{whole:?}"
                        );
                    }
                }
            }
        }
        assert!(taken > 0, "the fast path took some inputs");
    }
}

#[test]
fn writers_exact_bytes() {
    let mut out = Vec::new();
    write_rs_plus(&mut out, Some(b"$G"), b"foo", None);
    write_rs_plus(&mut out, Some(b"$G"), b"bar", Some((b"q1", 2)));
    write_rs_minus(&mut out, Some(b"$G"), b"bar", Some(b"q1"));
    write_rs_minus(&mut out, Some(b"$G"), b"foo", None);
    write_rs_plus(&mut out, None, b"x", None);
    assert_eq!(
        out,
        b"RS+ $G foo\r\nRS+ $G bar q1 2\r\nRS- $G bar q1\r\nRS- $G foo\r\nRS+ x\r\n"
    );
    let message = |reply, headers, payload| Message {
        subject: &b"foo"[..],
        reply,
        headers,
        payload,
    };
    /// (account, message, queues, the bytes nats-server sends)
    type Case<'a> = (Option<&'a [u8]>, Message<'a>, &'a [&'a [u8]], &'a [u8]);
    let cases: [Case<'_>; 7] = [
        (
            Some(b"$G"),
            message(None, None, b"hello"),
            &[],
            b"RMSG $G foo 5\r\nhello\r\n",
        ),
        (
            Some(b"$G"),
            message(Some(b"_INBOX.r1"), None, b"hello"),
            &[],
            b"RMSG $G foo _INBOX.r1 5\r\nhello\r\n",
        ),
        (
            Some(b"$G"),
            message(
                Some(b"_INBOX.r2"),
                Some(b"NATS/1.0\r\nX-K: v\r\n\r\n"),
                b"hello",
            ),
            &[],
            b"HMSG $G foo _INBOX.r2 20 25\r\nNATS/1.0\r\nX-K: v\r\n\r\nhello\r\n",
        ),
        (
            Some(b"$G"),
            message(None, None, b"abc"),
            &[b"q1", b"q2"],
            b"RMSG $G foo | q1 q2 3\r\nabc\r\n",
        ),
        (
            Some(b"$G"),
            message(Some(b"_INBOX.r3"), None, b"abc"),
            &[b"q1", b"q2"],
            b"RMSG $G foo + _INBOX.r3 q1 q2 3\r\nabc\r\n",
        ),
        (
            None,
            message(Some(b"r.1"), Some(b""), b"hi"),
            &[],
            b"RMSG foo r.1 2\r\nhi\r\n",
        ),
        (
            None,
            message(None, Some(b"NATS/1.0\r\n\r\n"), b"x"),
            &[b"q"],
            b"HMSG foo | q 12 13\r\nNATS/1.0\r\n\r\nx\r\n",
        ),
    ];
    for (account, message, queues, expected) in cases {
        let mut out = b"?".to_vec();
        write_routed_message(&mut out, account, &message, queues);
        assert_eq!(
            &out[1..],
            expected,
            "{:?}",
            String::from_utf8_lossy(expected)
        );
        assert_eq!(
            routed_message_len(account, &message, queues),
            expected.len()
        );
    }
}

fn bytes() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..40)
}

fn token() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(
        prop_oneof![
            Just(b'.'),
            Just(b'*'),
            Just(b'>'),
            Just(b'$'),
            b'a'..=b'z',
            b'0'..=b'9'
        ],
        1..10,
    )
}

proptest! {
    /// Whatever the writers write, the parser reads back as written, and the reader the same
    /// in random chunks.
    #[test]
    fn write_then_parse(
        accounts in any::<bool>(),
        account in token(),
        subject in token(),
        reply in proptest::option::of(token()),
        headers in proptest::option::of(bytes()),
        payload in bytes(),
        queues in proptest::collection::vec(token(), 0..4),
        weight in any::<u32>(),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..6),
    ) {
        let parser = RouteParser { accounts, ..legacy() };
        let account = accounts.then_some(&account[..]);
        let queue_names: Vec<&[u8]> = queues.iter().map(Vec::as_slice).collect();
        let message = Message {
            subject: &subject,
            reply: reply.as_deref(),
            headers: headers.as_deref(),
            payload: &payload,
        };
        let mut out = Vec::new();
        write_routed_message(&mut out, account, &message, &queue_names);
        prop_assert_eq!(out.len(), routed_message_len(account, &message, &queue_names));
        let joined = queues.join(&b' ');
        let expected = RouteOp::Message(RoutedMessage {
            origin: None,
            account,
            message: message.without_empty_headers(),
            queues: Queues::new(&joined),
        });
        prop_assert_eq!(parser.parse(&out), RouteStep::Op(expected.clone(), out.len()));
        let first = queue_names.first().copied();
        write_rs_plus(&mut out, account, &subject, first.map(|queue| (queue, weight)));
        write_rs_minus(&mut out, account, &subject, first);
        let rest = &out[routed_message_len(account, &message, &queue_names)..];
        let RouteStep::Op(plus, used) = parser.parse(rest) else { panic!("RS+") };
        // A weight over 9 digits is not a size for nats-server either: it reads as 0.
        let expected_weight = match first {
            Some(_) if weight <= 999_999_999 => weight,
            _ => 0,
        };
        prop_assert_eq!(plus, interest(true, account, &subject, first, expected_weight));
        let RouteStep::Op(minus, _) = parser.parse(&rest[used..]) else { panic!("RS-") };
        prop_assert_eq!(minus, interest(false, account, &subject, first, 0));

        let mut offsets: Vec<usize> = cuts.iter().map(|cut| cut.index(out.len() + 1)).collect();
        offsets.sort_unstable();
        let mut chunks: Vec<&[u8]> = Vec::new();
        let mut start = 0;
        for offset in offsets {
            chunks.push(&out[start..offset]);
            start = offset;
        }
        chunks.push(&out[start..]);
        let (ops, _) = feed(&parser, &chunks);
        prop_assert_eq!(ops.len(), 3);
        prop_assert_eq!(&ops[0], &format!("{expected:?}/{}", routed_message_len(account, &message, &queue_names)));
    }

    #[test]
    fn parse_rmsg_agrees_with_parse(
        accounts in any::<bool>(),
        input in proptest::collection::vec(prop_oneof![
            Just(b' '), Just(b'\t'), Just(b'\r'), Just(b'\n'), Just(b'1'), Just(b'a'), Just(b'|'), Just(b'+'),
        ], 0..24),
    ) {
        let parser = RouteParser { accounts, ..legacy() };
        let mut whole = b"RMSG ".to_vec();
        whole.extend_from_slice(&input);
        if let Some((message, used)) = parser.parse_rmsg(&whole) {
            prop_assert_eq!(parser.parse(&whole), RouteStep::Op(RouteOp::Message(message), used));
        }
    }

    #[test]
    fn never_panics_on_garbage(input in proptest::collection::vec(any::<u8>(), 0..200), accounts in any::<bool>()) {
        let parser = RouteParser { max_control_line: 32, accounts, leaf_unsub_origin: true, ..legacy() };
        if let RouteStep::Op(_, used) = parser.parse(&input) {
            prop_assert!(used > 0 && used <= input.len());
        }
    }
}

#[test]
fn route_connect_as_section_10() {
    let connect = RouteConnect {
        user: None,
        pass: None,
        tls_required: false,
        headers: true,
        name: "NAQFZAC3A7X7Q4ZDO22RQF44ZULF6LSHBGYE225DTJNRWL3AZESZUI5I".to_string(),
        cluster: "c1".to_string(),
        cluster_dynamic: false,
    };
    let mut out = Vec::new();
    write_route_connect(&mut out, &connect);
    assert_eq!(
        out,
        b"CONNECT {\"echo\":true,\"verbose\":false,\"pedantic\":false,\"tls_required\":false,\
          \"headers\":true,\"name\":\"NAQFZAC3A7X7Q4ZDO22RQF44ZULF6LSHBGYE225DTJNRWL3AZESZUI5I\",\
          \"cluster\":\"c1\"}\r\n"
    );
    let with_auth = RouteConnect {
        user: Some("ru".to_string()),
        pass: Some("rp".to_string()),
        cluster_dynamic: true,
        ..connect.clone()
    };
    out.clear();
    write_route_connect(&mut out, &with_auth);
    let text = String::from_utf8(out.clone()).unwrap();
    assert!(
        text.contains("\"pedantic\":false,\"user\":\"ru\",\"pass\":\"rp\",\"tls_required\""),
        "{text}"
    );
    assert!(text.ends_with(",\"cluster\":\"c1\",\"cluster_dynamic\":true}\r\n"));
    // Round trip through the route parser and the CONNECT decoder.
    let RouteStep::Op(RouteOp::Connect { json }, _) = legacy().parse(&out) else {
        panic!("not a CONNECT")
    };
    let peer = parse_route_connect(json).unwrap();
    assert_eq!(
        peer,
        PeerRouteConnect {
            verbose: false,
            user: Some("ru".to_string()),
            pass: Some("rp".to_string()),
            tls_required: false,
            headers: true,
            name: connect.name.clone(),
            cluster: "c1".to_string(),
            cluster_dynamic: true,
            ..PeerRouteConnect::default()
        }
    );
    assert_eq!(peer.rejection(), None);
}

#[test]
fn peer_route_connect_as_go_sends_it() {
    let json = b"{\"echo\":true,\"verbose\":false,\"pedantic\":false,\"tls_required\":false,\
        \"headers\":true,\"name\":\"NAQF\",\"cluster\":\"c1\",\"lnoc\":true,\"ln\":true}";
    let peer = parse_route_connect(json).unwrap();
    assert!(peer.lnoc && peer.ln && !peer.lnocu && peer.headers && !peer.verbose);
    assert_eq!((peer.name.as_str(), peer.cluster.as_str()), ("NAQF", "c1"));
    // Absent verbose is true, as nats-server's client options default.
    assert!(parse_route_connect(b"{}").unwrap().verbose);
    let client = parse_route_connect(b"{\"lang\":\"go\",\"verbose\":false}").unwrap();
    assert_eq!(
        client.rejection(),
        Some((
            "attempted to connect to route port".to_string(),
            CloseReason::WrongPort
        ))
    );
    let gateway = parse_route_connect(b"{\"gateway\":\"gw1\"}").unwrap();
    assert_eq!(
        gateway.rejection(),
        Some((
            "Rejecting connection from gateway \"gw1\" on the Route port".to_string(),
            CloseReason::WrongGateway
        ))
    );
    for bad in [
        &b"{\"cluster\":1}"[..],
        b"{\"verbose\":\"no\"}",
        b"{\"lnoc\":1}",
        b"[1]",
        b"{",
        b"{\"protocol\":\"x\"}",
    ] {
        assert_eq!(
            parse_route_connect(bad),
            Err(RouteError::ParseError),
            "{bad:?}"
        );
    }
    // Keys fold case as Go's encoding/json does.
    assert_eq!(
        parse_route_connect(b"{\"CLUSTER\":\"c2\"}")
            .unwrap()
            .cluster,
        "c2"
    );
}

#[test]
fn route_info_minimal_and_parsed_back() {
    let info = RouteInfo {
        server_id: "NFAKE".to_string(),
        server_name: "R".to_string(),
        version: "2.15.1".to_string(),
        go: "rust".to_string(),
        host: "127.0.0.1".to_string(),
        port: 6999,
        headers: true,
        max_payload: 1048576,
        cluster: "c1".to_string(),
        ..RouteInfo::default()
    };
    let mut out = Vec::new();
    write_route_info(&mut out, &info);
    assert_eq!(
        out,
        b"INFO {\"server_id\":\"NFAKE\",\"server_name\":\"R\",\"version\":\"2.15.1\",\"proto\":3,\
          \"go\":\"rust\",\"host\":\"127.0.0.1\",\"port\":6999,\"headers\":true,\
          \"max_payload\":1048576,\"cluster\":\"c1\"} \r\n"
    );
    let full = RouteInfo {
        auth_required: true,
        tls_required: true,
        tls_verify: true,
        ip: Some("nats-route://127.0.0.1:7250/".to_string()),
        cluster_dynamic: true,
        connect_urls: vec!["127.0.0.1:4250".to_string(), "10.0.0.1:4222".to_string()],
        ldm: true,
        compression_off: true,
        gossip_mode: 1,
        ..info
    };
    out.clear();
    write_route_info(&mut out, &full);
    let text = String::from_utf8(out.clone()).unwrap();
    assert!(text.contains(
        "\"headers\":true,\"auth_required\":true,\"tls_required\":true,\"tls_verify\":true,\
         \"max_payload\":1048576,"
    ));
    assert!(text.ends_with(
        "\"cluster\":\"c1\",\"cluster_dynamic\":true,\
         \"connect_urls\":[\"127.0.0.1:4250\",\"10.0.0.1:4222\"],\"ldm\":true,\
         \"compression\":\"off\",\"gossip_mode\":1} \r\n"
    ));
    for never in ["route_pool", "route_account", "lnoc", "\"ln\"", "accept"] {
        assert!(!text.contains(never), "{never} in {text}");
    }
    let RouteStep::Op(RouteOp::Info { json }, _) = legacy().parse(&out) else {
        panic!("not an INFO")
    };
    let peer = parse_route_info(json).unwrap();
    assert_eq!(
        peer,
        PeerRouteInfo {
            server_id: "NFAKE".to_string(),
            server_name: "R".to_string(),
            version: "2.15.1".to_string(),
            host: "127.0.0.1".to_string(),
            port: 6999,
            ip: "nats-route://127.0.0.1:7250/".to_string(),
            cluster: "c1".to_string(),
            cluster_dynamic: true,
            headers: true,
            connect_urls: full.connect_urls.clone(),
            gossip_mode: 1,
            ldm: true,
            compression: "off".to_string(),
            auth_required: true,
            tls_required: true,
            ..PeerRouteInfo::default()
        }
    );
}

#[test]
fn route_info_permissions_as_go_writes_them() {
    // nats-server 2.15.1 with `permissions { import: { allow: ["foo.>", "bar"], deny:
    // "foo.secret" }, export: "pub.*" }` sends, after `compression`:
    // `"import":{"allow":["foo.\u003e","bar"],"deny":["foo.secret"]},"export":{"allow":["pub.*"]}`
    let list = |subjects: &[&str]| Some(subjects.iter().map(|s| s.to_string()).collect());
    let info = RouteInfo {
        server_id: "N".to_string(),
        compression_off: true,
        import: Some(crate::auth::SubjectPermission {
            allow: list(&["foo.>", "bar"]),
            deny: list(&["foo.secret"]),
        }),
        export: Some(crate::auth::SubjectPermission {
            allow: list(&["pub.*"]),
            deny: Some(Vec::new()),
        }),
        gossip_mode: 1,
        ..RouteInfo::default()
    };
    let mut out = Vec::new();
    write_route_info(&mut out, &info);
    let text = String::from_utf8(out.clone()).unwrap();
    assert!(
        text.ends_with(
            "\"compression\":\"off\",\"import\":{\"allow\":[\"foo.\\u003e\",\"bar\"],\
             \"deny\":[\"foo.secret\"]},\"export\":{\"allow\":[\"pub.*\"]},\"gossip_mode\":1} \r\n"
        ),
        "{text}"
    );
    let RouteStep::Op(RouteOp::Info { json }, _) = legacy().parse(&out) else {
        panic!("not an INFO")
    };
    let peer = parse_route_info(json).unwrap();
    assert_eq!(peer.import, info.import);
    assert_eq!(peer.export.unwrap().allow, list(&["pub.*"]));
    // Both lists empty: `{}`, as Go marshals a non-nil permission with omitempty lists.
    let empty = RouteInfo {
        import: Some(crate::auth::SubjectPermission::default()),
        ..RouteInfo::default()
    };
    out.clear();
    write_route_info(&mut out, &empty);
    assert!(String::from_utf8(out)
        .unwrap()
        .ends_with(",\"import\":{}} \r\n"));
}

#[test]
fn peer_route_info_as_go_sends_it() {
    // ROUTES.md §2.1, one line, with the space before CRLF.
    let line = b"INFO {\"server_id\":\"NARCI2BXR74TA2JOXFKDQQKZGUFHARK362DTGQC5CV5AX5BZL2IC5UVZ\",\
        \"server_name\":\"A\",\"version\":\"2.15.1\",\"proto\":3,\"go\":\"go1.27.2\",\
        \"host\":\"127.0.0.1\",\"port\":6250,\"headers\":true,\"max_payload\":1048576,\
        \"nonce\":\"M8wHRUSht3sE6lQ\",\"cluster\":\"c1\",\"connect_urls\":[\"127.0.0.1:4250\"],\
        \"compression\":\"accept\",\"lnoc\":true,\"lnocu\":true,\"ln\":true,\"route_pool_size\":3} \r\n";
    let RouteStep::Op(RouteOp::Info { json }, used) = legacy().parse(line) else {
        panic!("not an INFO")
    };
    assert_eq!(used, line.len());
    let info = parse_route_info(json).unwrap();
    assert_eq!(info.server_name, "A");
    assert_eq!(info.port, 6250);
    assert_eq!(info.connect_urls, ["127.0.0.1:4250"]);
    assert_eq!(info.compression, "accept");
    assert!(info.lnoc && info.lnocu && info.ln && info.headers);
    assert_eq!((info.route_pool_size, info.route_pool_idx), (3, 0));
    let other = parse_route_info(
        b"{\"route_account\":\"$SYS\",\"route_pool_idx\":2,\"gossip_mode\":2,\"jetstream\":true,\
          \"ldm\":true,\"import\":{\"allow\":[\"a.>\"],\"deny\":null},\"export\":null,\"port\":null}",
    )
    .unwrap();
    assert_eq!(other.route_account, "$SYS");
    assert_eq!((other.route_pool_idx, other.gossip_mode), (2, 2));
    assert!(other.jetstream && other.ldm);
    assert_eq!(
        other.import,
        Some(crate::auth::SubjectPermission {
            allow: Some(vec!["a.>".into()]),
            deny: None
        })
    );
    assert_eq!((other.export, other.port), (None, 0));
    assert_eq!(parse_route_info(b"null").unwrap(), PeerRouteInfo::default());
    for bad in [
        &b"{\"port\":\"6250\"}"[..],
        b"{\"port\":1.5}",
        b"{\"gossip_mode\":256}",
        b"{\"max_payload\":4294967296}",
        b"{\"connect_urls\":[1]}",
        b"{\"import\":{\"allow\":\"a\"}}",
        b"{\"nonce\":5}",
        b"{\"ln\":\"yes\"}",
        b"{\"client_id\":-1}",
        b"[]",
        b"{} x",
    ] {
        assert_eq!(
            parse_route_info(bad),
            Err(RouteError::ParseError),
            "{bad:?}"
        );
    }
    // Unknown keys are ignored; keys fold case.
    let folded = parse_route_info(b"{\"SERVER_ID\":\"X\",\"whatever\":[{}]}").unwrap();
    assert_eq!(folded.server_id, "X");
}
