//! Operator mode for one configuration: the trusted operators (`operator`) and every account
//! JWT of the memory resolver (`resolver: MEMORY`, `resolver_preload`) verified once, so a
//! CONNECT's check (`Authenticator::check`) reads them without a lock. The accounts become
//! the server's accounts, named by their public keys as nats-server names them, with their
//! exports, imports and limits.

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use super::jwt::{MemoryResolver, TrustedOperators, VerifiedAccount};
use crate::account::AccountConfig;
use crate::config::Options;

/// The operators trusted and the accounts verified.
#[derive(Debug)]
pub struct OperatorMode {
    pub operators: TrustedOperators,
    /// Every preloaded account that verified, by public key.
    pub accounts: HashMap<String, VerifiedAccount>,
    /// The system account's public key: `system_account`, else the operator's.
    pub system_account: Option<String>,
}

/// Seconds since the Unix epoch: what JWT times are compared with.
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs() as i64)
}

impl OperatorMode {
    /// Operator mode as `options` configure it; `None` without `operator`. An operator JWT
    /// that does not decode or verify is an error (the server does not start, a reload is
    /// refused); an account JWT that does not verify is left out with a warning, as
    /// nats-server starts without it.
    pub fn new(options: &Options) -> Result<Option<OperatorMode>, String> {
        if options.operators.is_empty() {
            return Ok(None);
        }
        let now = unix_now();
        let operators = TrustedOperators::from_jwts(&options.operators, now)
            .map_err(|err| format!("operator JWT not valid: {err}"))?;
        let mut resolver = MemoryResolver::new(options.resolver_preload.iter().cloned());
        for (key, err) in resolver.verify_all(&operators, now) {
            crate::log_warn!("Account {key} not loaded from the resolver: {err}");
        }
        let accounts = options
            .resolver_preload
            .iter()
            .filter_map(|(key, _)| {
                let account = resolver.lookup(&operators, key, now).ok()?;
                Some((key.clone(), account.clone()))
            })
            .collect();
        let system_account = options
            .system_account
            .clone()
            .or_else(|| operators.system_account().map(str::to_string));
        Ok(Some(OperatorMode {
            operators,
            accounts,
            system_account,
        }))
    }

    /// Whether the import at `index` of account `importer` carries a valid activation token
    /// from its exporter (for exports that require one: `token_req`).
    pub fn import_activated(&self, importer: &str, index: usize) -> bool {
        let Some(account) = self.accounts.get(importer) else {
            return false;
        };
        let (Some(import), Some(claim)) = (
            account.config.imports.get(index),
            account.import_claims.get(index),
        ) else {
            return false;
        };
        let Some(exporter) = self.accounts.get(&import.account) else {
            return false;
        };
        let export_index = exporter.config.exports.iter().position(|export| {
            export.kind == import.kind
                && crate::auth::permissions::is_subset_match(
                    import.subject.as_bytes(),
                    export.subject.as_bytes(),
                )
        });
        let required = export_index.is_some_and(|i| exporter.export_auth[i].token_required);
        required
            && exporter
                .check_activation(importer, claim, export_index, unix_now())
                .is_ok()
    }

    /// The accounts' configurations, in a stable order (by public key).
    pub fn account_configs(&self) -> Vec<AccountConfig> {
        let mut configs: Vec<AccountConfig> = self
            .accounts
            .values()
            .map(|account| account.config.clone())
            .collect();
        configs.sort_by(|a, b| a.name.cmp(&b.name));
        configs
    }
}
