//! Authentication, permissions and accounts, differential: natsring and nats-server 2.15.1 are
//! started on the same configuration file, the same raw protocol exchanges are run against
//! both, and every connection must get the same bytes back (INFO normalized, random reply
//! subjects of service imports normalized) and the same close.

mod common;

use std::time::Duration;

use common::{run_exchange, start_natsring_with_config, start_reference_with_config, Raw};

/// A bcrypt hash (cost 4, so the tests stay fast) of `s3cr3t`.
const S3CR3T_BCRYPT: &str = "$2b$04$qlJqrvR/Df8H/OI3Tabi0.bELRgec0yA6GK8o4LmrnOsBwJOLoDEK";

struct Case {
    name: &'static str,
    connections: usize,
    steps: &'static [(usize, &'static [u8])],
}

/// Replaces the random part of service-import reply subjects (`_R_.abcdef.0123456789`).
fn normalize_replies(bytes: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(bytes).into_owned();
    let mut out = String::new();
    let mut rest = text.as_str();
    while let Some(at) = rest.find("_R_.") {
        out.push_str(&rest[..at]);
        out.push_str("_R_.<random>");
        let after = &rest[at + 4..];
        let end = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '.'))
            .unwrap_or(after.len());
        rest = &after[end..];
    }
    out.push_str(rest);
    out.into_bytes()
}

/// Runs every case against natsring and nats-server, both started on `config`.
fn agree(config: &str, cases: &[Case]) {
    let reference = start_reference_with_config(config);
    let natsring = start_natsring_with_config(config, &[]);
    let mut failures = Vec::new();
    for case in cases {
        let expected = run_exchange(reference.port, case.connections, case.steps);
        let got = run_exchange(natsring.port, case.connections, case.steps);
        let show = |outputs: &[(Vec<u8>, bool)]| {
            outputs
                .iter()
                .map(|(bytes, closed)| {
                    format!(
                        "{:?} closed={closed}",
                        String::from_utf8_lossy(&normalize_replies(bytes))
                    )
                })
                .collect::<Vec<_>>()
        };
        if show(&expected) != show(&got) {
            failures.push(format!(
                "{}:\n  nats-server: {:?}\n  natsring:    {:?}",
                case.name,
                show(&expected),
                show(&got)
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn tokens_as_nats_server_checks_them() {
    let plain = "authorization { token: s3cr3t }\n";
    let bcrypt = format!("authorization {{ token: \"{S3CR3T_BCRYPT}\" }}\n");
    let cases = [
        Case {
            name: "right token",
            connections: 1,
            steps: &[(
                0,
                b"CONNECT {\"auth_token\":\"s3cr3t\"}\r\nSUB foo 1\r\nPUB foo 2\r\nhi\r\nPING\r\n",
            )],
        },
        Case {
            name: "wrong token",
            connections: 1,
            steps: &[(0, b"CONNECT {\"auth_token\":\"nope\"}\r\nPING\r\n")],
        },
        Case {
            name: "no credentials",
            connections: 1,
            steps: &[(0, b"CONNECT {\"verbose\":false}\r\nPING\r\n")],
        },
        Case {
            name: "operation before CONNECT",
            connections: 1,
            steps: &[(0, b"PING\r\n")],
        },
        Case {
            name: "publish before CONNECT",
            connections: 1,
            steps: &[(0, b"PUB foo 2\r\nhi\r\nPING\r\n")],
        },
        Case {
            name: "an account in CONNECT",
            connections: 1,
            steps: &[(
                0,
                b"CONNECT {\"auth_token\":\"s3cr3t\",\"account\":\"A\"}\r\nPING\r\n",
            )],
        },
        Case {
            name: "a second CONNECT with a wrong token",
            connections: 1,
            steps: &[
                (
                    0,
                    b"CONNECT {\"verbose\":false,\"auth_token\":\"s3cr3t\"}\r\nPING\r\n",
                ),
                (0, b"CONNECT {\"auth_token\":\"nope\"}\r\nPING\r\n"),
            ],
        },
    ];
    agree(plain, &cases);
    agree(&bcrypt, &cases);
}

#[test]
fn users_and_passwords_as_nats_server_checks_them() {
    let config = format!(
        "authorization {{ users = [
            {{ user: alice, password: s3cr3t }}
            {{ user: bob, password: \"{S3CR3T_BCRYPT}\" }}
            {{ user: web, password: s3cr3t, allowed_connection_types: [\"WEBSOCKET\"] }}
        ] }}\n"
    );
    agree(
        &config,
        &[
            Case {
                name: "plain password",
                connections: 1,
                steps: &[(0, b"CONNECT {\"user\":\"alice\",\"pass\":\"s3cr3t\"}\r\nSUB a 1\r\nPUB a 1\r\nx\r\nPING\r\n")],
            },
            Case {
                name: "bcrypt password",
                connections: 1,
                steps: &[(0, b"CONNECT {\"user\":\"bob\",\"pass\":\"s3cr3t\"}\r\nSUB a 1\r\nPUB a 1\r\nx\r\nPING\r\n")],
            },
            Case {
                name: "wrong bcrypt password",
                connections: 1,
                steps: &[(0, b"CONNECT {\"user\":\"bob\",\"pass\":\"S3CR3T\"}\r\nPING\r\n")],
            },
            Case {
                name: "wrong plain password",
                connections: 1,
                steps: &[(0, b"CONNECT {\"user\":\"alice\",\"pass\":\"s3cr3\"}\r\nPING\r\n")],
            },
            Case {
                name: "unknown user",
                connections: 1,
                steps: &[(0, b"CONNECT {\"user\":\"carol\",\"pass\":\"s3cr3t\"}\r\nPING\r\n")],
            },
            Case {
                name: "user limited to websocket",
                connections: 1,
                steps: &[(0, b"CONNECT {\"user\":\"web\",\"pass\":\"s3cr3t\"}\r\nPING\r\n")],
            },
            Case {
                name: "operations pipelined behind a bcrypt CONNECT wait for it",
                connections: 2,
                steps: &[
                    (1, b"CONNECT {\"verbose\":false,\"user\":\"alice\",\"pass\":\"s3cr3t\"}\r\nSUB q 9\r\nPING\r\n"),
                    (0, b"CONNECT {\"verbose\":false,\"user\":\"bob\",\"pass\":\"s3cr3t\"}\r\nSUB r 1\r\nPUB q 2\r\nhi\r\nPUB r 3\r\nyes\r\nPING\r\n"),
                    (1, b"PING\r\n"),
                ],
            },
        ],
    );
}

#[test]
fn no_auth_user_takes_clients_without_credentials() {
    let config =
        "accounts { A { users = [ { user: guest, password: pw } ] } }\nno_auth_user: guest\n";
    agree(
        config,
        &[
            Case {
                name: "no CONNECT at all",
                connections: 1,
                steps: &[(0, b"SUB foo 1\r\nPUB foo 2\r\nhi\r\nPING\r\n")],
            },
            Case {
                name: "CONNECT without credentials",
                connections: 1,
                steps: &[(
                    0,
                    b"CONNECT {\"protocol\":1}\r\nSUB foo 1\r\nPUB foo 2\r\nhi\r\nPING\r\n",
                )],
            },
            Case {
                name: "CONNECT with wrong credentials",
                connections: 1,
                steps: &[(
                    0,
                    b"CONNECT {\"user\":\"guest\",\"pass\":\"no\"}\r\nPING\r\n",
                )],
            },
        ],
    );
}

#[test]
fn accounts_are_isolated_and_linked_only_by_their_exports() {
    let config = "accounts {
        A {
            users = [ { user: a, password: a } ]
            exports = [
                { stream: \"events.>\" }
                { stream: \"secret.>\", accounts: [C] }
                { service: \"svc.*\" }
            ]
        }
        B {
            users = [ { user: b, password: b } ]
            imports = [
                { stream: { account: A, subject: \"events.>\" }, prefix: fromA }
                { service: { account: A, subject: \"svc.echo\" }, to: ask }
            ]
        }
        C {
            users = [ { user: c, password: c } ]
            imports = [ { stream: { account: A, subject: \"secret.>\" } } ]
        }
    }\n";
    agree(
        config,
        &[
            Case {
                name: "same subject in two accounts",
                connections: 2,
                steps: &[
                    (1, b"CONNECT {\"verbose\":false,\"user\":\"b\",\"pass\":\"b\"}\r\nSUB foo 1\r\nSUB fromA.events.> 2\r\nPING\r\n"),
                    (0, b"CONNECT {\"verbose\":false,\"user\":\"a\",\"pass\":\"a\"}\r\nSUB foo 1\r\nPUB foo 2\r\nhi\r\nPUB events.one 3\r\nev1\r\nPUB secret.x 1\r\nx\r\nPING\r\n"),
                    (1, b"PING\r\n"),
                ],
            },
            Case {
                name: "a private stream reaches only its importer",
                connections: 3,
                steps: &[
                    (1, b"CONNECT {\"verbose\":false,\"user\":\"b\",\"pass\":\"b\"}\r\nSUB secret.> 1\r\nPING\r\n"),
                    (2, b"CONNECT {\"verbose\":false,\"user\":\"c\",\"pass\":\"c\"}\r\nSUB secret.> 1\r\nPING\r\n"),
                    (0, b"CONNECT {\"verbose\":false,\"user\":\"a\",\"pass\":\"a\"}\r\nPUB secret.x 2\r\nhi\r\nPING\r\n"),
                    (1, b"PING\r\n"),
                    (2, b"PING\r\n"),
                ],
            },
            Case {
                name: "a service request and its response cross accounts",
                connections: 2,
                steps: &[
                    (0, b"CONNECT {\"verbose\":false,\"user\":\"a\",\"pass\":\"a\"}\r\nSUB svc.echo 1\r\nPING\r\n"),
                    (1, b"CONNECT {\"verbose\":false,\"user\":\"b\",\"pass\":\"b\"}\r\nSUB inbox 7\r\nPUB ask inbox 5\r\nhello\r\nPING\r\n"),
                    (0, b"PING\r\n"),
                ],
            },
        ],
    );
}

/// The response leg, which needs the reply subject the service saw: each server's own.
#[test]
fn service_responses_route_back_once_for_a_singleton() {
    let config = "accounts {
        A { users = [ { user: a, password: a } ], exports = [ { service: svc } ] }
        B { users = [ { user: b, password: b } ], imports = [ { service: { account: A, subject: svc } } ] }
    }\n";
    let run = |port: u16| -> (String, String) {
        let wait = Duration::from_secs(10);
        let mut service = Raw::connect(port);
        service.read_until(b"\r\n", wait);
        service.send(
            b"CONNECT {\"verbose\":false,\"user\":\"a\",\"pass\":\"a\"}\r\nSUB svc 1\r\nPING\r\n",
        );
        service.read_until(b"PONG\r\n", wait);
        let mut client = Raw::connect(port);
        client.read_until(b"\r\n", wait);
        client.send(b"CONNECT {\"verbose\":false,\"user\":\"b\",\"pass\":\"b\"}\r\nSUB inbox 7\r\nPUB svc inbox 2\r\nhi\r\nPING\r\n");
        client.read_until(b"PONG\r\n", wait);
        let request = service.read_until(b"hi\r\n", wait);
        let line = String::from_utf8_lossy(&request).into_owned();
        let reply = line
            .split_whitespace()
            .find(|word| word.starts_with("_R_."))
            .expect("a routed reply subject")
            .to_string();
        // Two responses: a singleton service's requestor gets the first only.
        service
            .send(format!("PUB {reply} 3\r\none\r\nPUB {reply} 3\r\ntwo\r\nPING\r\n").as_bytes());
        service.read_until(b"PONG\r\n", wait);
        client.send(b"PING\r\n");
        let answers = client.read_until(b"PONG\r\n", wait);
        (
            String::from_utf8_lossy(&normalize_replies(&request)).into_owned(),
            String::from_utf8_lossy(&answers).into_owned(),
        )
    };
    let reference = start_reference_with_config(config);
    let natsring = start_natsring_with_config(config, &[]);
    let expected = run(reference.port);
    assert_eq!(
        expected.1, "MSG inbox 7 3\r\none\r\nPONG\r\n",
        "nats-server's behaviour"
    );
    assert_eq!(run(natsring.port), expected);
}

#[test]
fn authentication_times_out_as_in_nats_server() {
    let config = "authorization { token: s3cr3t, timeout: 0.5 }\n";
    let run = |port: u16| {
        let mut raw = Raw::connect(port);
        raw.read_until(b"\r\n", Duration::from_secs(5));
        let (bytes, closed) = raw.read_until_close_within(Duration::from_secs(5));
        (String::from_utf8_lossy(&bytes).into_owned(), closed)
    };
    let reference = start_reference_with_config(config);
    let natsring = start_natsring_with_config(config, &[]);
    let expected = run(reference.port);
    assert_eq!(
        expected,
        ("-ERR 'Authentication Timeout'\r\n".to_string(), true)
    );
    assert_eq!(run(natsring.port), expected);
}

/// nkey users: INFO carries a nonce; the CONNECT's signature of it proves the key.
#[test]
fn nkey_users_sign_the_nonce_as_in_nats_server() {
    let user = nkeys::KeyPair::new_user();
    let stranger = nkeys::KeyPair::new_user();
    let config = format!(
        "authorization {{ users = [ {{ nkey: {} }} ] }}\n",
        user.public_key()
    );
    let run = |port: u16, signer: &nkeys::KeyPair, claimed: &str| -> (String, String, bool) {
        let wait = Duration::from_secs(10);
        let mut raw = Raw::connect(port);
        let info = raw.read_until(b"\r\n", wait);
        let json: serde_json::Value =
            serde_json::from_slice(info[5..].trim_ascii()).expect("INFO json");
        let nonce = json["nonce"].as_str().expect("a nonce").to_string();
        let signature = signer.sign(nonce.as_bytes()).unwrap();
        let sig = data_encoding::BASE64URL_NOPAD.encode(&signature);
        raw.send(
            format!(
                "CONNECT {{\"verbose\":false,\"nkey\":\"{claimed}\",\"sig\":\"{sig}\"}}\r\nPING\r\n"
            )
            .as_bytes(),
        );
        let (bytes, closed) = raw.read_until_or_close(b"PONG\r\n", wait);
        (
            format!("nonce of {} characters", nonce.len()),
            String::from_utf8_lossy(&bytes).into_owned(),
            closed,
        )
    };
    let reference = start_reference_with_config(&config);
    let natsring = start_natsring_with_config(&config, &[]);
    let public = user.public_key();
    for (signer, claimed) in [(&user, public.as_str()), (&stranger, public.as_str())] {
        let expected = run(reference.port, signer, claimed);
        assert_eq!(run(natsring.port, signer, claimed), expected);
    }
    assert_eq!(run(natsring.port, &user, &public).1, "PONG\r\n");
}

#[test]
fn permissions_as_nats_server_enforces_them() {
    let config = "authorization {
        default_permissions { publish: { deny: \"forbidden.>\" } }
        users = [
            { user: pub, password: p, permissions: { publish: [\"allowed.>\", \"_INBOX.>\"], subscribe: \"_INBOX.>\" } }
            { user: sub, password: s, permissions: { subscribe: { allow: [\"news.*\", \"jobs q1\"], deny: \"news.secret\" }, publish: { deny: \">\" } } }
            { user: wild, password: w, permissions: { subscribe: { allow: \">\", deny: \"news.secret\" } } }
            { user: svc, password: v, permissions: { subscribe: \"req.>\", allow_responses: { max: 1 } } }
            { user: plain, password: x }
        ]
    }\n";
    agree(
        config,
        &[
            Case {
                name: "publish allowed and denied",
                connections: 1,
                steps: &[(0, b"CONNECT {\"user\":\"pub\",\"pass\":\"p\"}\r\nSUB _INBOX.1 1\r\nPUB allowed.x 1\r\na\r\nPUB other 1\r\nb\r\nPUB allowed.y _INBOX.1 1\r\nc\r\nSUB other 2\r\nPING\r\n")],
            },
            Case {
                name: "subscribe allow, deny and queue permissions",
                connections: 1,
                steps: &[(0, b"CONNECT {\"user\":\"sub\",\"pass\":\"s\"}\r\nSUB news.today 1\r\nSUB news.secret 2\r\nSUB news.> 3\r\nSUB jobs 4\r\nSUB jobs q1 5\r\nSUB jobs q2 6\r\nPUB news.today 1\r\nx\r\nPING\r\n")],
            },
            Case {
                name: "a wildcard subscription does not get denied subjects",
                connections: 2,
                steps: &[
                    (0, b"CONNECT {\"verbose\":false,\"user\":\"wild\",\"pass\":\"w\"}\r\nSUB news.* 1\r\nPING\r\n"),
                    (1, b"CONNECT {\"verbose\":false,\"user\":\"plain\",\"pass\":\"x\"}\r\nPUB news.secret 1\r\ns\r\nPUB news.open 1\r\no\r\nPUB forbidden.x 1\r\nf\r\nPING\r\n"),
                    (0, b"PING\r\n"),
                ],
            },
            Case {
                name: "a responder may answer once",
                connections: 2,
                steps: &[
                    (0, b"CONNECT {\"verbose\":false,\"user\":\"svc\",\"pass\":\"v\"}\r\nSUB req.> 1\r\nPUB somewhere 1\r\nx\r\nPING\r\n"),
                    (1, b"CONNECT {\"verbose\":false,\"user\":\"plain\",\"pass\":\"x\"}\r\nSUB answers 9\r\nPUB req.1 answers 1\r\nq\r\nPING\r\n"),
                    (0, b"PUB answers 1\r\n1\r\nPUB answers 1\r\n2\r\nPING\r\n"),
                    (1, b"PING\r\n"),
                ],
            },
            Case {
                name: "reserved replies and the system queue group",
                connections: 1,
                steps: &[(0, b"CONNECT {\"verbose\":false,\"user\":\"plain\",\"pass\":\"x\"}\r\nPUB a _R_.x 1\r\nx\r\nPUB a $JS.ACK.x 1\r\nx\r\nSUB a _sys_ 1\r\nPUB $NRG.x 1\r\nx\r\nPING\r\n")],
            },
        ],
    );
}

#[test]
fn system_account_users_connect_and_everyone_else_stays_in_g() {
    let config = "accounts { $SYS { users = [ { user: admin, password: secret } ] } }\n";
    agree(
        config,
        &[
            Case {
                name: "anonymous clients still work",
                connections: 1,
                steps: &[(0, b"CONNECT {\"verbose\":false,\"protocol\":1}\r\nSUB foo 1\r\nPUB foo 1\r\nx\r\nPING\r\n")],
            },
            Case {
                name: "a system account user",
                connections: 2,
                steps: &[
                    (0, b"CONNECT {\"verbose\":false,\"protocol\":1,\"user\":\"admin\",\"pass\":\"secret\"}\r\nSUB foo 1\r\nPING\r\n"),
                    (1, b"CONNECT {\"verbose\":false}\r\nPUB foo 1\r\nx\r\nPING\r\n"),
                    (0, b"PING\r\n"),
                ],
            },
            Case {
                name: "a wrong system password",
                connections: 1,
                steps: &[(0, b"CONNECT {\"user\":\"admin\",\"pass\":\"nope\"}\r\nPING\r\n")],
            },
        ],
    );
}

#[test]
fn mappings_route_as_in_nats_server() {
    let config = "mappings { \"orders.*\": \"shipping.{{wildcard(1)}}\", \"old\": \"new\" }
        accounts { A { users = [ { user: a, password: a } ], mappings { \"in.>\": \"out.>\" } } }\n";
    agree(
        config,
        &[
            Case {
                name: "server level mappings",
                connections: 1,
                steps: &[(0, b"CONNECT {\"verbose\":false}\r\nSUB > 1\r\nPUB orders.7 1\r\nx\r\nPUB old 1\r\ny\r\nPUB in.z 1\r\nz\r\nPING\r\n")],
            },
            Case {
                name: "account mappings",
                connections: 1,
                steps: &[(0, b"CONNECT {\"verbose\":false,\"user\":\"a\",\"pass\":\"a\"}\r\nSUB > 1\r\nPUB in.z 1\r\nz\r\nPUB orders.7 1\r\nx\r\nPING\r\n")],
            },
        ],
    );
}

/// Every configuration block of README's Security section is a file both servers take.
#[test]
fn readme_security_examples_are_valid_for_both_servers() {
    let readme = include_str!("../README.md");
    let section = readme
        .split("\n## Security\n")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .expect("README has a Security section");
    let blocks: Vec<&str> = section
        .split("```conf\n")
        .skip(1)
        .filter_map(|rest| rest.split("```").next())
        .collect();
    assert!(blocks.len() >= 4, "the examples are there");
    for (index, block) in blocks.iter().enumerate() {
        let path = common::temp_path(&format!("security-{index}.conf"));
        std::fs::write(&path, block).unwrap();
        for program in ["nats-server", env!("CARGO_BIN_EXE_natsring")] {
            let output = std::process::Command::new(program)
                .args(["-t", "-c"])
                .arg(&path)
                .output()
                .unwrap_or_else(|err| panic!("{program} runs: {err}"));
            assert!(
                output.status.success(),
                "{program} refuses example {index}:\n{block}\n{}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        let _ = std::fs::remove_file(path);
    }
}

/// Each account's traffic is counted apart (what `/accountz` will read), closed clients'
/// included.
#[tokio::test]
async fn each_account_counts_its_own_traffic() {
    use natsring::account::AccountConfig;
    use natsring::auth::User;
    let mut options = common::options();
    let user = |name: &str, account: &str| User {
        username: name.into(),
        password: "pw".into(),
        account: Some(account.into()),
        ..User::default()
    };
    options.auth.users = Some(vec![user("a", "A"), user("b", "B")]);
    options.accounts = ["A", "B"]
        .iter()
        .map(|name| AccountConfig {
            name: name.to_string(),
            ..AccountConfig::default()
        })
        .collect();
    let server = common::start_with(options);
    let connect = |name: &str| {
        async_nats::ConnectOptions::with_user_and_password(name.into(), "pw".into())
            .connect(server.url())
    };
    let a = connect("a").await.unwrap();
    let b = connect("b").await.unwrap();
    let mut a_sub = a.subscribe("x").await.unwrap();
    common::sync(&a).await;
    let traffic = |name: &str| {
        server
            .handle()
            .account_traffic()
            .into_iter()
            .find(|account| account.account == name)
            .unwrap()
    };
    let (a_before, b_before) = (traffic("A"), traffic("B"));
    for _ in 0..3 {
        a.publish("x", "12345".into()).await.unwrap();
    }
    b.publish("x", "1".into()).await.unwrap();
    a.flush().await.unwrap();
    b.flush().await.unwrap();
    for _ in 0..3 {
        futures::StreamExt::next(&mut a_sub).await.unwrap();
    }
    // B's publish is counted once the server has read it: wait for it (bounded).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while traffic("B").in_msgs == b_before.in_msgs {
        assert!(
            std::time::Instant::now() < deadline,
            "B's publish is counted"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // A closes: its counts stay with the account.
    drop(a_sub);
    drop(a);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while traffic("A").connections > 0 {
        assert!(std::time::Instant::now() < deadline, "A's client is gone");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (a_after, b_after) = (traffic("A"), traffic("B"));
    assert_eq!(a_after.in_msgs - a_before.in_msgs, 3);
    assert_eq!(a_after.in_bytes - a_before.in_bytes, 15);
    assert_eq!(a_after.out_msgs - a_before.out_msgs, 3);
    assert_eq!(a_after.out_bytes - a_before.out_bytes, 15);
    assert_eq!(b_after.in_msgs - b_before.in_msgs, 1);
    assert_eq!(b_after.in_bytes - b_before.in_bytes, 1);
    assert_eq!(
        b_after.out_msgs - b_before.out_msgs,
        0,
        "A's messages never reach B"
    );
    assert_eq!(b_after.connections, 1);
    assert_eq!(traffic("$G").in_msgs, 0);
}
