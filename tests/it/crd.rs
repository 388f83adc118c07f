//! The CryptoClient CRD: the checked-in YAML is what the Rust types
//! generate, the schema is structural (every property typed), and the
//! sample resources in examples/ deserialize.

use crypto_operator::crd::{CryptoClient, crd_yaml};
use serde::Deserialize;
use serde_yaml::Value;

const CHECKED_IN: &str = include_str!("../../crds/cryptoclient.yaml");

#[test]
fn checked_in_crd_equals_the_generated_one() {
    let generated = crd_yaml().unwrap();
    assert!(
        generated == CHECKED_IN,
        "crds/cryptoclient.yaml is stale: run `cargo run -- crd > crds/cryptoclient.yaml`"
    );
}

/// Every schema node must have a `type` unless it is an explicit escape
/// hatch (`x-kubernetes-int-or-string`, `x-kubernetes-preserve-unknown-fields`);
/// no `anyOf`/`oneOf`/`allOf` without types, no `$ref`.
fn untyped(node: &Value, path: &str, out: &mut Vec<String>) {
    let Some(map) = node.as_mapping() else { return };
    let escape = map.get("x-kubernetes-int-or-string").is_some()
        || map.get("x-kubernetes-preserve-unknown-fields").is_some();
    if map.get("type").is_none() && !escape {
        out.push(path.to_string());
    }
    if map.get("$ref").is_some() {
        out.push(format!("{path} ($ref)"));
    }
    if let Some(props) = map.get("properties").and_then(Value::as_mapping) {
        for (k, v) in props {
            untyped(v, &format!("{path}.{}", k.as_str().unwrap_or("?")), out);
        }
    }
    if let Some(items) = map.get("items") {
        untyped(items, &format!("{path}[]"), out);
    }
    if let Some(ap) = map.get("additionalProperties").filter(|v| v.is_mapping()) {
        untyped(ap, &format!("{path}{{}}"), out);
    }
    for key in ["anyOf", "oneOf", "allOf"] {
        if let Some(list) = map.get(key).and_then(Value::as_sequence) {
            for (i, v) in list.iter().enumerate() {
                // Inside these, nodes may only constrain, but kube's
                // structural rules still forbid types differing from the
                // parent; flag any nested schema with its own properties.
                if v.get("properties").is_some() {
                    out.push(format!("{path}.{key}[{i}] declares properties"));
                }
            }
        }
    }
}

#[test]
fn schema_is_structural() {
    let crd: Value = serde_yaml::from_str(CHECKED_IN).unwrap();
    let versions = crd["spec"]["versions"].as_sequence().unwrap();
    assert_eq!(versions.len(), 1);
    let v = &versions[0];
    assert_eq!(v["name"], "v1alpha1");
    assert_eq!(
        v["subresources"]["status"],
        Value::Mapping(Default::default())
    );
    let mut bad = Vec::new();
    untyped(&v["schema"]["openAPIV3Schema"], "", &mut bad);
    assert!(bad.is_empty(), "untyped schema nodes: {bad:?}");
    // The checker itself finds an untyped map.
    let mut probe = Vec::new();
    untyped(
        &serde_yaml::from_str("type: object\nproperties:\n  m:\n    additionalProperties: {}\n")
            .unwrap(),
        "",
        &mut probe,
    );
    assert_eq!(probe, [".m", ".m{}"]);
}

#[test]
fn crd_has_printer_columns_short_name_and_scope() {
    let crd: Value = serde_yaml::from_str(CHECKED_IN).unwrap();
    assert_eq!(crd["spec"]["group"], "crypto.fleet.dev");
    assert_eq!(crd["spec"]["scope"], "Namespaced");
    assert!(
        crd["spec"]["names"]["shortNames"]
            .as_sequence()
            .unwrap()
            .iter()
            .any(|s| s == "cc")
    );
    let cols: Vec<&str> = crd["spec"]["versions"][0]["additionalPrinterColumns"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        cols,
        [
            "Phase",
            "Paused",
            "Last Heartbeat",
            "Version",
            "Age",
            "Replica"
        ],
        "the contract's five, and the holding replica (priority 1: `kubectl get -o wide`)"
    );
}

#[test]
fn sample_resources_deserialize() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/examples");
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let text = std::fs::read_to_string(&path).unwrap();
            // A file may hold other objects too (a token Secret).
            for doc in serde_yaml::Deserializer::from_str(&text) {
                let v = serde_yaml::Value::deserialize(doc).unwrap();
                if v["kind"] != "CryptoClient" {
                    continue;
                }
                let cc: CryptoClient =
                    serde_yaml::from_value(v).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                assert!(!cc.client_id().is_empty(), "{}", path.display());
                seen += 1;
            }
        }
    }
    assert!(seen >= 3, "sample resources found: {seen}");
    let bot: CryptoClient = serde_yaml::from_str(
        &std::fs::read_to_string(format!("{dir}/cryptoclient-paused.yaml")).unwrap(),
    )
    .unwrap();
    assert_eq!(bot.client_id(), "bot-eu-1");
    assert!(bot.spec.paused);
    let minimal: CryptoClient = serde_yaml::from_str(
        &std::fs::read_to_string(format!("{dir}/cryptoclient-minimal.yaml")).unwrap(),
    )
    .unwrap();
    assert_eq!(minimal.client_id(), "price-feed-1");
    assert!(!minimal.spec.paused && !minimal.spec.sync_requested && minimal.spec.config.is_empty());
}
