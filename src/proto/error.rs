//! The errors a client connection can hit, with nats-server's exact `-ERR` bytes, and the
//! reasons a connection is closed, named and worded as nats-server's `ClosedState`.
//!
//! Every `-ERR` text here was checked against nats-server 2.15.1 (see the tests and the
//! `proto` module docs). A [`ServerError`] says three things: what to send (`wire`), whether
//! to close (`closes`), and which [`CloseReason`] to record (`close_reason`).

/// An error the server reports to (or about) a client connection.
///
/// Permission violations carry a subject and are not here yet (they need formatting).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ServerError {
    /// Unknown op, bad byte in an op name, or a payload not followed by exactly `\r\n`.
    UnknownOp,
    /// Bad credentials, an op before CONNECT when auth is required, or CONNECT naming an
    /// `account` / `new_account` (no longer supported by nats-server).
    AuthorizationViolation,
    /// No CONNECT within the auth timeout (only when auth is required).
    AuthenticationTimeout,
    /// PUB/HPUB announced more than `max_payload` bytes (HPUB: the total size).
    MaxPayload,
    /// Control line arguments longer than `max_control_line`.
    MaxControlLine,
    /// Sent after INFO when `max_connections` is reached.
    MaxConnections,
    /// SUB over the per-connection `max_subscriptions`. Does not close.
    MaxSubscriptions,
    /// CONNECT with `protocol` other than 0 or 1.
    InvalidClientProtocol,
    /// CONNECT with `no_responders: true` but not `headers: true`.
    NoRespondersRequiresHeaders,
    /// `ping_max` PINGs went unanswered.
    StaleConnection,
    /// SUB with a malformed subject. Does not close.
    InvalidSubject,
    /// PUB/HPUB to a subject that is not a valid literal, in pedantic mode. Does not close;
    /// the message is still processed.
    InvalidPublishSubject,
    /// Bad arguments (wrong count, bad size, HPUB header size over total, HPUB without
    /// negotiated headers), malformed CONNECT or INFO JSON. nats-server closes without any
    /// `-ERR` ("Protocol Violation").
    ParseError,
    /// The client sent `-ERR ...`. nats-server logs it and closes without replying
    /// ("Parse Error").
    ClientError,
    /// An operator-mode user whose JWT expired while connected.
    UserAuthenticationExpired,
    /// CONNECT into an account at its JWT's connection limit.
    MaxAccountConnections,
}

impl ServerError {
    /// The complete bytes to send, `-ERR '<text>'\r\n`, or `None` for a silent close.
    pub fn wire(&self) -> Option<&'static [u8]> {
        let bytes: &'static [u8] = match self {
            ServerError::UnknownOp => b"-ERR 'Unknown Protocol Operation'\r\n",
            ServerError::AuthorizationViolation => b"-ERR 'Authorization Violation'\r\n",
            ServerError::AuthenticationTimeout => b"-ERR 'Authentication Timeout'\r\n",
            ServerError::MaxPayload => b"-ERR 'Maximum Payload Violation'\r\n",
            ServerError::MaxControlLine => b"-ERR 'maximum control line exceeded'\r\n",
            ServerError::MaxConnections => b"-ERR 'maximum connections exceeded'\r\n",
            ServerError::MaxSubscriptions => b"-ERR 'maximum subscriptions exceeded'\r\n",
            ServerError::InvalidClientProtocol => b"-ERR 'invalid client protocol'\r\n",
            ServerError::NoRespondersRequiresHeaders => {
                b"-ERR 'no responders requires headers support'\r\n"
            }
            ServerError::StaleConnection => b"-ERR 'Stale Connection'\r\n",
            ServerError::InvalidSubject => b"-ERR 'Invalid Subject'\r\n",
            ServerError::InvalidPublishSubject => b"-ERR 'Invalid Publish Subject'\r\n",
            ServerError::UserAuthenticationExpired => b"-ERR 'User Authentication Expired'\r\n",
            ServerError::MaxAccountConnections => {
                b"-ERR 'maximum account active connections exceeded'\r\n"
            }
            ServerError::ParseError | ServerError::ClientError => return None,
        };
        Some(bytes)
    }

    /// True exactly when nats-server closes the connection after this error.
    pub fn closes(&self) -> bool {
        self.close_reason().is_some()
    }

    /// The reason recorded when the connection is closed for this error; `None` when the
    /// connection stays open.
    pub fn close_reason(&self) -> Option<CloseReason> {
        let reason = match self {
            ServerError::UnknownOp | ServerError::ParseError => CloseReason::ProtocolViolation,
            ServerError::AuthorizationViolation => CloseReason::AuthenticationViolation,
            ServerError::AuthenticationTimeout => CloseReason::AuthenticationTimeout,
            ServerError::MaxPayload => CloseReason::MaxPayloadExceeded,
            ServerError::MaxControlLine => CloseReason::MaxControlLineExceeded,
            ServerError::MaxConnections => CloseReason::MaxConnectionsExceeded,
            ServerError::InvalidClientProtocol => CloseReason::BadClientProtocolVersion,
            ServerError::NoRespondersRequiresHeaders => CloseReason::NoRespondersRequiresHeaders,
            ServerError::StaleConnection => CloseReason::StaleConnection,
            ServerError::ClientError => CloseReason::ParseError,
            ServerError::UserAuthenticationExpired => CloseReason::AuthenticationExpired,
            ServerError::MaxAccountConnections => CloseReason::MaxAccountConnectionsExceeded,
            ServerError::MaxSubscriptions
            | ServerError::InvalidSubject
            | ServerError::InvalidPublishSubject => return None,
        };
        Some(reason)
    }
}

/// An error in what a route peer sent (`proto::route`): every one closes the route. The
/// table is ROUTES.md §7's, as nats-server 2.15.1 behaves (`parser.go`, `route.go`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RouteError {
    /// An unknown op (`FOO`, `MSG`, a bare `RS+`), a bad byte in an op name, or a payload not
    /// followed by exactly `\r\n`: nats-server's `parseErr`.
    UnknownOp,
    /// Bad arguments: a wrong field count for RS+/RS-/LS+/LS-/UNSUB (a queue RS+ without its
    /// weight included), a bad size or reply indicator in RMSG/HMSG/LMSG, a header size over
    /// the total, a bad PUB/HPUB line, HPUB without negotiated headers. Also a route INFO or
    /// CONNECT whose JSON does not decode (`route::parse_route_info`, `parse_route_connect`).
    /// nats-server closes without any `-ERR` ("Router parser ERROR", Protocol Violation).
    ParseError,
    /// Control line arguments longer than the route limit (16 x `max_control_line`).
    MaxControlLine,
    /// An op other than CONNECT first on an accepted route (`RouteParser::awaiting_connect`).
    AuthorizationViolation,
}

impl RouteError {
    /// The complete bytes to send, `-ERR '<text>'\r\n`, or `None` for a silent close.
    pub fn wire(&self) -> Option<&'static [u8]> {
        let server_error = match self {
            RouteError::UnknownOp => ServerError::UnknownOp,
            RouteError::ParseError => ServerError::ParseError,
            RouteError::MaxControlLine => ServerError::MaxControlLine,
            RouteError::AuthorizationViolation => ServerError::AuthorizationViolation,
        };
        server_error.wire()
    }

    /// The reason recorded when the route is closed (it always is).
    pub fn close_reason(&self) -> CloseReason {
        match self {
            RouteError::UnknownOp | RouteError::ParseError => CloseReason::ProtocolViolation,
            RouteError::MaxControlLine => CloseReason::MaxControlLineExceeded,
            RouteError::AuthorizationViolation => CloseReason::AuthenticationViolation,
        }
    }
}

/// Why a connection was closed: nats-server's `ClosedState`, same names, same order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CloseReason {
    ClientClosed,
    AuthenticationTimeout,
    AuthenticationViolation,
    TLSHandshakeError,
    SlowConsumerPendingBytes,
    SlowConsumerWriteDeadline,
    WriteError,
    ReadError,
    ParseError,
    StaleConnection,
    ProtocolViolation,
    BadClientProtocolVersion,
    WrongPort,
    MaxAccountConnectionsExceeded,
    MaxConnectionsExceeded,
    MaxPayloadExceeded,
    MaxControlLineExceeded,
    MaxSubscriptionsExceeded,
    DuplicateRoute,
    RouteRemoved,
    ServerShutdown,
    AuthenticationExpired,
    WrongGateway,
    MissingAccount,
    Revocation,
    InternalClient,
    MsgHeaderViolation,
    NoRespondersRequiresHeaders,
    ClusterNameConflict,
    DuplicateRemoteLeafnodeConnection,
    DuplicateClientID,
    DuplicateServerName,
    MinimumVersionRequired,
    ClusterNamesIdentical,
    Kicked,
    ProxyNotTrusted,
    ProxyRequired,
}

impl CloseReason {
    /// nats-server's `ClosedState.String()`: the `reason` shown by `/connz?state=closed`.
    pub fn as_str(&self) -> &'static str {
        match self {
            CloseReason::ClientClosed => "Client Closed",
            CloseReason::AuthenticationTimeout => "Authentication Timeout",
            CloseReason::AuthenticationViolation => "Authentication Failure",
            CloseReason::TLSHandshakeError => "TLS Handshake Failure",
            CloseReason::SlowConsumerPendingBytes => "Slow Consumer (Pending Bytes)",
            CloseReason::SlowConsumerWriteDeadline => "Slow Consumer (Write Deadline)",
            CloseReason::WriteError => "Write Error",
            CloseReason::ReadError => "Read Error",
            CloseReason::ParseError => "Parse Error",
            CloseReason::StaleConnection => "Stale Connection",
            CloseReason::ProtocolViolation => "Protocol Violation",
            CloseReason::BadClientProtocolVersion => "Bad Client Protocol Version",
            CloseReason::WrongPort => "Incorrect Port",
            CloseReason::MaxAccountConnectionsExceeded => "Maximum Account Connections Exceeded",
            CloseReason::MaxConnectionsExceeded => "Maximum Connections Exceeded",
            CloseReason::MaxPayloadExceeded => "Maximum Message Payload Exceeded",
            CloseReason::MaxControlLineExceeded => "Maximum Control Line Exceeded",
            CloseReason::MaxSubscriptionsExceeded => "Maximum Subscriptions Exceeded",
            CloseReason::DuplicateRoute => "Duplicate Route",
            CloseReason::RouteRemoved => "Route Removed",
            CloseReason::ServerShutdown => "Server Shutdown",
            CloseReason::AuthenticationExpired => "Authentication Expired",
            CloseReason::WrongGateway => "Wrong Gateway",
            CloseReason::MissingAccount => "Missing Account",
            CloseReason::Revocation => "Credentials Revoked",
            CloseReason::InternalClient => "Internal Client",
            CloseReason::MsgHeaderViolation => "Message Header Violation",
            CloseReason::NoRespondersRequiresHeaders => "No Responders Requires Headers",
            CloseReason::ClusterNameConflict => "Cluster Name Conflict",
            CloseReason::DuplicateRemoteLeafnodeConnection => {
                "Duplicate Remote LeafNode Connection"
            }
            CloseReason::DuplicateClientID => "Duplicate Client ID",
            CloseReason::DuplicateServerName => "Duplicate Server Name",
            CloseReason::MinimumVersionRequired => "Minimum Version Required",
            CloseReason::ClusterNamesIdentical => "Cluster Names Identical",
            CloseReason::Kicked => "Kicked",
            CloseReason::ProxyNotTrusted => "Proxy Not Trusted",
            CloseReason::ProxyRequired => "Proxy Required",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [ServerError; 16] = [
        ServerError::UserAuthenticationExpired,
        ServerError::MaxAccountConnections,
        ServerError::UnknownOp,
        ServerError::AuthorizationViolation,
        ServerError::AuthenticationTimeout,
        ServerError::MaxPayload,
        ServerError::MaxControlLine,
        ServerError::MaxConnections,
        ServerError::MaxSubscriptions,
        ServerError::InvalidClientProtocol,
        ServerError::NoRespondersRequiresHeaders,
        ServerError::StaleConnection,
        ServerError::InvalidSubject,
        ServerError::InvalidPublishSubject,
        ServerError::ParseError,
        ServerError::ClientError,
    ];

    #[test]
    fn wire_bytes_are_quoted_err_lines() {
        for err in ALL {
            if let Some(wire) = err.wire() {
                assert!(wire.starts_with(b"-ERR '"), "{err:?}");
                assert!(wire.ends_with(b"'\r\n"), "{err:?}");
                // One line: no CR/LF before the terminator.
                assert!(!wire[..wire.len() - 2].contains(&b'\n'), "{err:?}");
            }
        }
    }

    #[test]
    fn exact_texts_seen_from_nats_server() {
        assert_eq!(
            ServerError::UnknownOp.wire().unwrap(),
            b"-ERR 'Unknown Protocol Operation'\r\n"
        );
        assert_eq!(
            ServerError::MaxControlLine.wire().unwrap(),
            b"-ERR 'maximum control line exceeded'\r\n"
        );
        assert_eq!(
            ServerError::MaxPayload.wire().unwrap(),
            b"-ERR 'Maximum Payload Violation'\r\n"
        );
        assert_eq!(
            ServerError::NoRespondersRequiresHeaders.wire().unwrap(),
            b"-ERR 'no responders requires headers support'\r\n"
        );
        assert_eq!(ServerError::ParseError.wire(), None);
        assert_eq!(ServerError::ClientError.wire(), None);
    }

    #[test]
    fn closing_and_reasons() {
        let open = [
            ServerError::MaxSubscriptions,
            ServerError::InvalidSubject,
            ServerError::InvalidPublishSubject,
        ];
        for err in ALL {
            assert_eq!(err.closes(), !open.contains(&err), "{err:?}");
            assert_eq!(err.closes(), err.close_reason().is_some(), "{err:?}");
        }
        // As /connz?state=closed reports them for nats-server 2.15.1.
        let seen = [
            (ServerError::UnknownOp, "Protocol Violation"),
            (ServerError::ParseError, "Protocol Violation"),
            (ServerError::ClientError, "Parse Error"),
            (ServerError::MaxPayload, "Maximum Message Payload Exceeded"),
            (ServerError::MaxControlLine, "Maximum Control Line Exceeded"),
            (
                ServerError::InvalidClientProtocol,
                "Bad Client Protocol Version",
            ),
            (
                ServerError::NoRespondersRequiresHeaders,
                "No Responders Requires Headers",
            ),
            (
                ServerError::AuthorizationViolation,
                "Authentication Failure",
            ),
        ];
        for (err, text) in seen {
            assert_eq!(err.close_reason().unwrap().as_str(), text, "{err:?}");
        }
    }

    #[test]
    fn route_errors_as_routes_md_section_7() {
        assert_eq!(
            RouteError::UnknownOp.wire().unwrap(),
            b"-ERR 'Unknown Protocol Operation'\r\n"
        );
        assert_eq!(
            RouteError::MaxControlLine.wire().unwrap(),
            b"-ERR 'maximum control line exceeded'\r\n"
        );
        assert_eq!(
            RouteError::AuthorizationViolation.wire().unwrap(),
            b"-ERR 'Authorization Violation'\r\n"
        );
        assert_eq!(RouteError::ParseError.wire(), None);
        let reasons = [
            (RouteError::UnknownOp, "Protocol Violation"),
            (RouteError::ParseError, "Protocol Violation"),
            (RouteError::MaxControlLine, "Maximum Control Line Exceeded"),
            (RouteError::AuthorizationViolation, "Authentication Failure"),
        ];
        for (error, text) in reasons {
            assert_eq!(error.close_reason().as_str(), text, "{error:?}");
        }
    }

    #[test]
    fn close_reason_texts() {
        assert_eq!(CloseReason::ClientClosed.as_str(), "Client Closed");
        assert_eq!(
            CloseReason::SlowConsumerPendingBytes.as_str(),
            "Slow Consumer (Pending Bytes)"
        );
        assert_eq!(CloseReason::StaleConnection.as_str(), "Stale Connection");
        assert_eq!(CloseReason::WrongPort.as_str(), "Incorrect Port");
        assert_eq!(CloseReason::Revocation.as_str(), "Credentials Revoked");
        assert_eq!(CloseReason::ProxyRequired.as_str(), "Proxy Required");
    }
}
