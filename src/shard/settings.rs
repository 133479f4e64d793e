//! What a shard reads of the configuration (`Settings`), swapped whole on a reload.

use std::sync::Arc;

use crate::account::links::Links;
use crate::account::{self, Account, AccountConfig, AccountId, AccountLimits};
use crate::auth::authenticate::Authenticator;
use crate::auth::operator::OperatorMode;
use crate::config::Options;
use crate::mapping::MappingTable;
use crate::proto::json::Info;

/// What a shard reads of the configuration while it runs. Immutable: a reload makes a new one
/// and hands it to every shard (`Control::Reload`), which swaps it in between completions, so
/// nothing on the message path ever takes a lock to read it.
#[derive(Debug)]
pub struct Settings {
    pub options: Options,
    /// The INFO every client gets, before its client_id and client_ip are filled in.
    pub info: Info,
    /// Every account, indexed by `AccountId` (`$G` first). A reload only adds accounts, so an
    /// id stays valid for the server's life (see `account::accounts_for`).
    pub accounts: Vec<Arc<Account>>,
    /// The system account's id, unless `no_system_account`.
    pub system_account: Option<AccountId>,
    /// The configured identities, to check CONNECTs against.
    pub auth: Authenticator,
    /// Each account's links to others (exports and imports), indexed by `AccountId`.
    pub links: Vec<Option<Arc<Links>>>,
    /// Each account's subject mappings, indexed by `AccountId` (`None`: none).
    pub mappings: Vec<Option<Arc<MappingTable>>>,
    /// Each account's limits (from its JWT in operator mode; none otherwise).
    pub limits: Vec<AccountLimits>,
    /// Client TLS (`tls {}`), loaded by the server (`Settings::with_tls`); None: plain TCP.
    pub tls: Option<Arc<super::tls::ClientTls>>,
    /// Cluster TLS (`cluster { tls {} }`), loaded by the server (`Settings::with_route_tls`);
    /// None: routes are plain TCP.
    pub route_tls: Option<Arc<super::route_tls::RouteTls>>,
}

impl Settings {
    /// The settings `options` make, keeping the accounts of `previous` (a reload's), in
    /// operator mode with `operator` (made from the same options by `OperatorMode::new`,
    /// whose failure stopped the start or refused the reload before).
    pub fn new(
        options: Options,
        mut info: Info,
        previous: Option<&Settings>,
        operator: Option<Arc<OperatorMode>>,
    ) -> Settings {
        let mut configs = options.accounts.clone();
        if let Some(operator) = &operator {
            configs.extend(operator.account_configs());
        }
        let system_name = match &operator {
            Some(operator) => operator.system_account.clone(),
            None => Some(account::system_account_name(&options).to_string()),
        }
        .filter(|_| !options.no_system_account);
        let accounts = account::accounts_for(
            &configs,
            system_name.as_deref(),
            previous.map_or(&[][..], |settings| &settings.accounts),
        );
        let id = |name: &str| account::find(&accounts, name).unwrap_or(AccountId::GLOBAL);
        let auth = Authenticator::new(&options, operator.clone(), id);
        let system_account = system_name
            .as_deref()
            .and_then(|name| account::find(&accounts, name));
        info.auth_required = auth.required();
        let activated = |importer: &str, index: usize| {
            operator
                .as_ref()
                .is_some_and(|operator| operator.import_activated(importer, index))
        };
        let links = match jetstream_import(&options, &configs, system_name.as_deref()) {
            Some(with_import) => account::links::build(&with_import, &accounts, &activated),
            None => account::links::build(&configs, &accounts, &activated),
        };
        let mappings = accounts
            .iter()
            .map(|account| mapping_table(&options, &configs, &account.name))
            .collect();
        let limits = accounts
            .iter()
            .map(|account| {
                configs
                    .iter()
                    .find(|config| config.name == account.name)
                    .map(|config| config.limits)
                    .unwrap_or_default()
            })
            .collect();
        Settings {
            options,
            info,
            accounts,
            system_account,
            auth,
            links,
            mappings,
            limits,
            tls: None,
            route_tls: None,
        }
    }

    /// These settings with cluster TLS.
    pub fn with_route_tls(mut self, tls: Option<Arc<super::route_tls::RouteTls>>) -> Settings {
        self.route_tls = tls;
        self
    }

    /// These settings with client TLS: INFO says what nats-server's says (`tls_required`,
    /// or `tls_available` with `allow_non_tls`; `tls_verify` when certificates are checked).
    pub fn with_tls(mut self, tls: Option<Arc<super::tls::ClientTls>>) -> Settings {
        self.info.tls_required = tls.as_ref().is_some_and(|tls| !tls.allow_non_tls);
        self.info.tls_available = tls.as_ref().is_some_and(|tls| tls.allow_non_tls);
        self.info.tls_verify = tls.as_ref().is_some_and(|tls| tls.verify);
        self.tls = tls;
        self
    }

    /// An account's name.
    pub fn account_name(&self, account: AccountId) -> &str {
        &self.accounts[account.index()].name
    }
}

/// The subjects of the JetStream API, which a clustered server without JetStream of its own
/// imports from the system account so that its clients reach the cluster's JetStream servers.
pub const JETSTREAM_API: &str = "$JS.API.>";

/// nats-server's "simple mixed mode" (server.go): a clustered server without JetStream whose
/// only accounts are the global and the system account gives the global account a service
/// import of `$JS.API.>` from the system account (responses singleton, the requestor's
/// account in `Nats-Request-Info`), so a request of its clients crosses the routes into the
/// system account, where JetStream servers listen, and comes back to the requestor. The
/// account configurations with that import, or None when it does not apply.
fn jetstream_import(
    options: &Options,
    configs: &[AccountConfig],
    system: Option<&str>,
) -> Option<Vec<AccountConfig>> {
    let clustered = options
        .cluster
        .as_ref()
        .is_some_and(|cluster| cluster.port.is_some());
    let system = system?;
    let only_global_and_system = configs.iter().all(|config| config.name == system);
    if !clustered || !only_global_and_system {
        return None;
    }
    let mut configs = configs.to_vec();
    let system_config = match configs.iter().position(|config| config.name == system) {
        Some(index) => index,
        None => {
            configs.push(AccountConfig {
                name: system.to_string(),
                ..AccountConfig::default()
            });
            configs.len() - 1
        }
    };
    configs[system_config].exports.push(account::Export {
        kind: account::ExportKind::Service,
        subject: JETSTREAM_API.to_string(),
        accounts: None,
        response_type: account::ResponseType::Singleton,
        response_threshold: None,
        account_token_position: 0,
    });
    configs.push(AccountConfig {
        name: account::GLOBAL_ACCOUNT.to_string(),
        imports: vec![account::Import {
            kind: account::ExportKind::Service,
            account: system.to_string(),
            subject: JETSTREAM_API.to_string(),
            to: None,
            prefix: false,
            share: true,
        }],
        ..AccountConfig::default()
    });
    Some(configs)
}

/// The mapping table of the account `name`: the server-level `mappings` are the global
/// account's. `None` when it has none (or, logged, when the configuration layer let through
/// one that cannot be built).
fn mapping_table(
    options: &Options,
    configs: &[AccountConfig],
    name: &str,
) -> Option<Arc<MappingTable>> {
    let mappings = if name == account::GLOBAL_ACCOUNT {
        &options.mappings
    } else {
        &configs.iter().find(|config| config.name == name)?.mappings
    };
    if mappings.is_empty() {
        return None;
    }
    match MappingTable::new(mappings, None) {
        Ok(table) => (!table.is_empty()).then(|| Arc::new(table)),
        Err((index, err)) => {
            crate::log_error!(
                "Error adding mapping for {}: {err}",
                crate::config::go::quote(&mappings[index].source)
            );
            None
        }
    }
}
