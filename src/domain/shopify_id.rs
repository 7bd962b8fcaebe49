//! Shopify's names for its records: the 64-bit resource ID (never an f64) and the order number
//! inside an order's name. Parses them; knows nothing of where they are read or stored.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer, de};

/// A Shopify resource ID: a 64-bit integer (never an f64). Accepts a JSON integer, a decimal
/// string, or a GraphQL global ID (`gid://shopify/Order/9007199254741107`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ShopifyId(pub i64);

impl ShopifyId {
    pub fn parse(text: &str) -> Option<Self> {
        let path = text.split('?').next().unwrap_or(text);
        let digits = path.rsplit('/').next().unwrap_or(path);
        digits.parse::<i64>().ok().filter(|id| *id > 0).map(ShopifyId)
    }
}

impl fmt::Display for ShopifyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl Serialize for ShopifyId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_i64(self.0)
    }
}

impl<'de> Deserialize<'de> for ShopifyId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct IdVisitor;
        impl de::Visitor<'_> for IdVisitor {
            type Value = ShopifyId;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a Shopify ID (positive 64-bit integer, numeric string or gid)")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ShopifyId, E> {
                i64::try_from(v).ok().filter(|v| *v > 0).map(ShopifyId).ok_or_else(|| E::custom("ID out of range"))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ShopifyId, E> {
                (v > 0).then_some(ShopifyId(v)).ok_or_else(|| E::custom("ID must be positive"))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<ShopifyId, E> {
                Err(E::custom("ID is a float; Shopify IDs are integers"))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ShopifyId, E> {
                ShopifyId::parse(v).ok_or_else(|| E::custom(format!("not a Shopify ID: {v:?}")))
            }
        }
        deserializer.deserialize_any(IdVisitor)
    }
}

/// An order name split around its order number: `SO-1001-A` → (1001, `SO-`, `-A`). Shopify
/// names an order prefix + order number + suffix (the shop's checkout settings); the number is
/// taken as the last run of digits.
pub fn order_number_in(name: &str) -> Option<(i64, &str, &str)> {
    let end = name.rfind(|c: char| c.is_ascii_digit())? + 1;
    let start = name[..end].rfind(|c: char| !c.is_ascii_digit()).map_or(0, |i| i + 1);
    let number = name[start..end].parse().ok()?;
    Some((number, &name[..start], &name[end..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize)]
    struct IdOnly {
        id: ShopifyId,
    }

    #[test]
    fn ids_above_two_to_the_53_survive_exactly() {
        let order: IdOnly = serde_json::from_str(r#"{"id": 9007199254741107}"#).unwrap();
        assert_eq!(order.id, ShopifyId(9_007_199_254_741_107));
        assert_eq!(ShopifyId::parse("gid://shopify/Order/9007199254741107"), Some(ShopifyId(9_007_199_254_741_107)));
        assert_eq!(
            ShopifyId::parse("gid://shopify/MailingAddress/9007199254741001?model_name=CustomerAddress"),
            Some(ShopifyId(9_007_199_254_741_001))
        );
        assert_eq!(serde_json::to_string(&ShopifyId(9_007_199_254_741_107)).unwrap(), "9007199254741107");
        assert!(serde_json::from_str::<IdOnly>(r#"{"id": 1.5}"#).is_err());
        assert!(serde_json::from_str::<IdOnly>(r#"{"id": -3}"#).is_err());
    }

    #[test]
    fn an_order_name_splits_around_its_number() {
        assert_eq!(order_number_in("#1042"), Some((1042, "#", "")));
        assert_eq!(order_number_in("SO-1001-A"), Some((1001, "SO-", "-A")));
        assert_eq!(order_number_in("1001"), Some((1001, "", "")));
        assert_eq!(order_number_in("gift"), None);
    }
}
