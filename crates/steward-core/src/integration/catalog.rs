//! The catalog: the apps shipped with Steward (embedded JSON files under `catalog/`) plus the
//! operator's, read from a directory of `*.json` / `*.toml` files. An operator file whose id is
//! already in the catalog replaces that app entirely (that is also how tests point Slack at a
//! local fake server). Reading that directory is the only I/O of this crate.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{App, TriggerComponent};
use crate::ValidationError;
use crate::source::describe_serde;

/// The shipped apps: (file name, contents).
const SHIPPED: &[(&str, &str)] = &[
    ("catalog/slack.json", include_str!("../../catalog/slack.json")),
    ("catalog/github.json", include_str!("../../catalog/github.json")),
    ("catalog/linear.json", include_str!("../../catalog/linear.json")),
    ("catalog/google.json", include_str!("../../catalog/google.json")),
    ("catalog/discord.json", include_str!("../../catalog/discord.json")),
    ("catalog/telegram.json", include_str!("../../catalog/telegram.json")),
];

/// The apps known to this server, by id.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Catalog {
    apps: BTreeMap<String, App>,
}

/// Why the catalog could not be loaded. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// The directory or a file in it could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file does not parse or its app does not validate; `error.param` is the field.
    #[error("{path}: {error}")]
    Invalid { path: PathBuf, error: ValidationError },
    /// Two operator files define the same app.
    #[error("{path} and {other} both define app `{id}`; keep one of them")]
    Duplicate { id: String, path: PathBuf, other: PathBuf },
}

impl Catalog {
    /// The apps shipped with Steward. They are validated (a test keeps them valid).
    pub fn shipped() -> Catalog {
        let mut apps = BTreeMap::new();
        for (name, text) in SHIPPED {
            let app = parse_app(Path::new(name), text).unwrap_or_else(|e| panic!("the shipped integration catalog is invalid: {e}"));
            apps.insert(app.id.clone(), app);
        }
        Catalog { apps }
    }

    /// Adds every `*.json` and `*.toml` file of `dir` (not recursing; hidden files are skipped).
    /// An app whose id is already known replaces that app entirely.
    pub fn with_dir(mut self, dir: &Path) -> Result<Catalog, CatalogError> {
        let read_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| CatalogError::Read { path, source }
        };
        let mut files = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(read_err(dir))? {
            let path = entry.map_err(read_err(dir))?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            let wanted = !name.starts_with('.') && (name.ends_with(".json") || name.ends_with(".toml"));
            if wanted && path.is_file() {
                files.push(path);
            }
        }
        files.sort();
        let mut from: BTreeMap<String, PathBuf> = BTreeMap::new();
        for path in files {
            let text = std::fs::read_to_string(&path).map_err(read_err(&path))?;
            let app = parse_app(&path, &text)?;
            if let Some(other) = from.insert(app.id.clone(), path.clone()) {
                return Err(CatalogError::Duplicate { id: app.id, path: other, other: path });
            }
            self.apps.insert(app.id.clone(), app);
        }
        Ok(self)
    }

    /// The app with this id.
    pub fn get(&self, id: &str) -> Option<&App> {
        self.apps.get(id)
    }

    /// Every app, ordered by id.
    pub fn iter(&self) -> impl Iterator<Item = &App> {
        self.apps.values()
    }

    /// A trigger component by its full id (`github.issue_opened`), with its app.
    pub fn component(&self, id: &str) -> Option<(&App, &TriggerComponent)> {
        let (app_id, _) = id.split_once('.')?;
        let app = self.apps.get(app_id)?;
        Some((app, app.component(id)?))
    }
}

/// Parses and validates one app file; JSON unless the name ends in `.toml`.
fn parse_app(path: &Path, text: &str) -> Result<App, CatalogError> {
    let invalid = |error| CatalogError::Invalid { path: path.to_path_buf(), error };
    let value: serde_json::Value = if path.extension().is_some_and(|e| e == "toml") {
        toml::from_str(text).map_err(|e| {
            let line = e.span().map(|s| text.get(..s.start).unwrap_or(text).matches('\n').count() + 1).unwrap_or(1);
            invalid(ValidationError::new("file", format!("is not valid TOML (line {line}): {}", e.message())))
        })?
    } else {
        serde_json::from_str(text).map_err(|e| invalid(ValidationError::new("file", format!("is not valid JSON: {e}"))))?
    };
    let app_id = value.get("id").and_then(|v| v.as_str()).map(crate::ids::shorten);
    let app: App = serde_path_to_error::deserialize(&value).map_err(|e| {
        let mut param = e.path().to_string();
        let mut message = describe_serde(e.inner());
        // "missing field `token_url`" at `oauth` reads better as `oauth.token_url` being required.
        if let Some(field) = message.strip_prefix("missing field `").and_then(|m| m.strip_suffix('`')) {
            param = if param == "." { field.to_string() } else { format!("{param}.{field}") };
            message = "this required field is missing".to_string();
        }
        if param == "." {
            param = "file".to_string();
        }
        if let Some(id) = &app_id {
            message = format!("app `{id}`: {message}");
        }
        invalid(ValidationError::new(param, message))
    })?;
    app.validate().map_err(invalid)?;
    Ok(app)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shipped_app_parses_and_validates() {
        for (name, text) in SHIPPED {
            let app = parse_app(Path::new(name), text).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(format!("catalog/{}.json", app.id), *name, "a shipped file is named after its app");
        }
        assert_eq!(Catalog::shipped().iter().count(), SHIPPED.len());
    }
}
