//! Opaque, globally unique, kind-prefixed ids (§1): `acc_…`, `sbx_…`, `agt_…`, `key_…`.
//!
//! The body is a lowercase ULID, so ids of one kind sort in creation order; pagination relies
//! on that. Parsing checks the prefix, so an id of the wrong kind is refused at the edge with a
//! message naming both kinds.

use std::fmt;

use crate::ValidationError;

/// Every id prefix the platform hands out, with the noun used in error messages.
const KINDS: &[(&str, &str)] = &[
    ("acc_", "account"),
    ("sbx_", "sandbox"),
    ("agt_", "agent"),
    ("ses_", "session"),
    ("run_", "run"),
    ("evt_", "event"),
    ("src_", "source"),
    ("trg_", "trigger"),
    ("chb_", "channel binding"),
    ("sch_", "schedule"),
    ("sub_", "subscription"),
    ("dlv_", "delivery"),
    ("cac_", "connected account"),
    ("pub_", "publication"),
    ("key_", "API key"),
    ("env_", "environment"),
    ("skl_", "skill"),
    ("vlt_", "vault"),
    ("mem_", "memory store"),
    ("fil_", "file"),
    ("prv_", "provider"),
    ("int_", "integration"),
    ("pub_", "publication"),
    ("evl_", "eval"),
];

const BODY_LEN: usize = 26;

fn noun_of(s: &str) -> Option<&'static str> {
    KINDS.iter().find(|(p, _)| s.starts_with(p)).map(|(_, n)| *n)
}

/// Checks that `raw` is a well-formed id with `prefix`; `param` names the input for errors.
pub fn check(raw: &str, prefix: &str, param: &str) -> Result<(), ValidationError> {
    let noun = noun_of(prefix).unwrap_or("object");
    if let Some(body) = raw.strip_prefix(prefix) {
        let ok = body.len() == BODY_LEN && body.bytes().all(|b| b.is_ascii_digit() || b.is_ascii_lowercase());
        if ok {
            return Ok(());
        }
        return Err(ValidationError::new(
            param,
            format!("`{}` is not a valid {noun} id: expected `{prefix}` followed by 26 lowercase letters or digits", shorten(raw)),
        ));
    }
    let got = match noun_of(raw) {
        Some(other) => format!("`{}` is {} {other} id", shorten(raw), article(other)),
        None => format!("`{}` is not an id", shorten(raw)),
    };
    Err(ValidationError::new(param, format!("{got}; expected {} {noun} id (`{prefix}…`)", article(noun))))
}

fn article(noun: &str) -> &'static str {
    if noun.starts_with(['a', 'e', 'i', 'o', 'u', 'A', 'E', 'I', 'O', 'U']) { "an" } else { "a" }
}

/// Keeps hostile or huge input out of error messages.
pub fn shorten(raw: &str) -> String {
    let clean: String = raw.chars().filter(|c| !c.is_control()).take(64).collect();
    if raw.chars().count() > 64 { format!("{clean}…") } else { clean }
}

/// `prefix` followed by a fresh lowercase ULID: the body of every generated id. Also used for
/// kinds whose id is a user-chosen slug that defaults to a generated one (providers, `prv_…`).
pub fn fresh(prefix: &str) -> String {
    format!("{prefix}{}", ulid::Ulid::new().to_string().to_ascii_lowercase())
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub const PREFIX: &'static str = $prefix;

            /// A fresh id.
            pub fn generate() -> Self {
                Self(fresh($prefix))
            }

            /// Parses user input; `param` names the field in the error.
            pub fn parse(raw: &str, param: &str) -> Result<Self, ValidationError> {
                check(raw, $prefix, param)?;
                Ok(Self(raw.to_owned()))
            }

            /// Wraps a value read back from the store, which only ever holds ids we generated.
            pub fn from_trusted(raw: String) -> Self {
                Self(raw)
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

id_type!(/// An account (a person).
    AccountId, "acc_");
id_type!(/// A sandbox, the unit of tenancy.
    SandboxId, "sbx_");
id_type!(/// An agent.
    AgentId, "agt_");
id_type!(/// An API key's public id (never its secret).
    ApiKeyId, "key_");
id_type!(/// A session (a conversation with one agent).
    SessionId, "ses_");
id_type!(/// A run (one turn of work in a session).
    RunId, "run_");
id_type!(/// A vault (one named secret).
    VaultId, "vlt_");
id_type!(/// A tool source (§6).
    SourceId, "src_");
id_type!(/// An environment (§7).
    EnvironmentId, "env_");
id_type!(/// A webhook trigger (§11).
    TriggerId, "trg_");
id_type!(/// A chat channel binding (§10): one chat of one platform bound to an agent.
    ChannelBindingId, "chb_");
id_type!(/// A cron schedule (§11).
    ScheduleId, "sch_");
id_type!(/// An outbound webhook subscription (§12).
    SubscriptionId, "sub_");
id_type!(/// One outbound notification to one subscription (§12).
    DeliveryId, "dlv_");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_parse_and_sort_by_creation() {
        let a = AgentId::generate();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = AgentId::generate();
        assert!(AgentId::parse(a.as_str(), "id").is_ok());
        assert!(a < b);
    }

    #[test]
    fn wrong_kind_names_both_kinds() {
        let s = SandboxId::generate();
        let err = AgentId::parse(s.as_str(), "agent_id").unwrap_err();
        assert_eq!(err.param, "agent_id");
        assert!(err.message.contains("a sandbox id"), "{}", err.message);
        assert!(err.message.contains("an agent id"), "{}", err.message);
    }

    #[test]
    fn garbage_is_refused_and_shortened() {
        let long = "agt_".to_string() + &"x".repeat(500);
        let err = AgentId::parse(&long, "id").unwrap_err();
        assert!(err.message.len() < 200);
        assert!(AgentId::parse("agt_' OR 1=1 --", "id").is_err());
        assert!(AgentId::parse("", "id").is_err());
    }
}
id_type!(/// An account of an integration app connected to a sandbox (§10).
    ConnectedAccountId, "cac_");
id_type!(/// A publication: which agent serves which workspace/channel of a connected account (§10).
    PublicationId, "pub_");
