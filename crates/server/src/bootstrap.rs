//! First start: on an empty store, create the admin API key and the first authtoken (or take them
//! from `WARREN_ADMIN_API_KEY` / `WARREN_AUTHTOKEN`), keep only their hashes, and show them once.

use warren_store::{NewCredential, Store};

use crate::Server;
use crate::config::{Bootstrap, Config};

/// Secrets created on first start. Shown once, never logged.
pub struct Created {
    pub admin_api_key: String,
    pub authtoken: String,
    /// Whether the operator supplied them (then they are not printed again).
    pub provided: bool,
}

impl std::fmt::Debug for Created {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Created")
            .field("provided", &self.provided)
            .finish_non_exhaustive()
    }
}

/// Creates the first credentials when the store is empty.
pub async fn ensure(store: &Store, bootstrap: &Bootstrap) -> anyhow::Result<Option<Created>> {
    if !store.is_empty().await? {
        return Ok(None);
    }
    let provided = bootstrap.admin_api_key.is_some() || bootstrap.authtoken.is_some();
    let admin_api_key = match &bootstrap.admin_api_key {
        Some(token) => {
            store
                .create_api_key_with_token("admin (first start)", token)
                .await?;
            token.clone()
        }
        None => store.create_api_key("admin (first start)").await?.1,
    };
    let first = NewCredential {
        description: "first authtoken (created on first start)".into(),
        metadata: String::new(),
        acl: Vec::new(),
        owner_id: None,
    };
    let authtoken = match &bootstrap.authtoken {
        Some(token) => {
            store.create_credential_with_token(first, token).await?;
            token.clone()
        }
        None => store.create_credential(first).await?.1,
    };
    Ok(Some(Created {
        admin_api_key,
        authtoken,
        provided,
    }))
}

impl Created {
    /// The first-start message: the secrets (unless the operator supplied them) and the exact
    /// commands that connect an agent.
    pub fn announcement(&self, config: &Config, server: &Server) -> String {
        let ca = config.data_dir.join("ca.pem");
        let agent_host = if server.agent_addr.ip().is_unspecified() {
            format!("localhost:{}", server.agent_addr.port())
        } else {
            server.agent_addr.to_string()
        };
        let (key, token) = if self.provided {
            (
                "(from WARREN_ADMIN_API_KEY)".to_owned(),
                "(from WARREN_AUTHTOKEN)".to_owned(),
            )
        } else {
            (self.admin_api_key.clone(), self.authtoken.clone())
        };
        let token_arg = if self.provided {
            "$WARREN_AUTHTOKEN".to_owned()
        } else {
            self.authtoken.clone()
        };
        format!(
            "\nWarren first start: created an admin API key and an authtoken. They are shown only now;\n\
             only their hashes are stored.\n\n\
             \x20 admin API key: {key}\n\
             \x20 authtoken:     {token}\n\n\
             Connect an agent with the warren agent (`cargo build --release -p warren-cli` builds it):\n\n\
             \x20 warren http 3000 --authtoken {token_arg} --connect-url {agent_host} --connect-cas {ca}\n\n\
             or with the official ngrok SDK (Python):\n\n\
             \x20 python3 -c 'import ngrok, time; l = ngrok.forward(\"localhost:3000\", authtoken=\"{token_arg}\", server_addr=\"{agent_host}\", root_cas=\"{ca}\"); print(l.url()); time.sleep(1e9)'\n",
            ca = ca.display(),
        )
    }
}
