//! `ServerInfo`: who the broker says it is, from `connection.start`'s server-properties.

use hare_protocol::{FieldTable, FieldValue};
use serde::{Deserialize, Serialize};

/// The broker's product, version, platform and information strings (empty when absent).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerInfo {
    pub product: String,
    pub version: String,
    pub platform: String,
    pub information: String,
}

impl ServerInfo {
    pub fn from_properties(properties: &FieldTable) -> ServerInfo {
        let text = |key: &str| {
            properties
                .get(key)
                .and_then(FieldValue::as_bytes)
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default()
        };
        ServerInfo {
            product: text("product"),
            version: text("version"),
            platform: text("platform"),
            information: text("information"),
        }
    }

    /// A short name for tables: Hare calls itself RabbitMQ in `product` (clients check it), so
    /// a platform naming Hare wins.
    pub fn label(&self) -> String {
        if let Some(hare) = self.platform.strip_prefix("Hare ") {
            let version = hare.split_whitespace().next().unwrap_or_default();
            return format!("Hare {version}");
        }
        format!("{} {}", self.product, self.version)
            .trim()
            .to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use hare_protocol::ShortStr;

    fn table(entries: &[(&'static str, &'static str)]) -> FieldTable {
        entries
            .iter()
            .map(|(k, v)| {
                (
                    ShortStr::from_static(k),
                    FieldValue::LongStr(Bytes::from_static(v.as_bytes())),
                )
            })
            .collect()
    }

    #[test]
    fn labels_hare_by_its_platform_and_others_by_product() {
        let hare = ServerInfo::from_properties(&table(&[
            ("product", "RabbitMQ"),
            ("version", "3.13.7"),
            ("platform", "Hare 0.1.0 (Rust, glommio)"),
        ]));
        assert_eq!(hare.label(), "Hare 0.1.0");
        let rabbit = ServerInfo::from_properties(&table(&[
            ("product", "RabbitMQ"),
            ("version", "3.10.8"),
            ("platform", "Erlang/OTP 25"),
        ]));
        assert_eq!(rabbit.label(), "RabbitMQ 3.10.8");
        assert_eq!(ServerInfo::default().label(), "");
    }
}
