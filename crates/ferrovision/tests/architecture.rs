//! The crate graph in `docs/architecture.md` is the real one: the table's "depends on" column
//! equals the normal dependencies between workspace crates that `cargo metadata` reports, every
//! dependency points to a lower level, and `ferrovision-nn` pulls in no image or video crate.

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Command;

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `tensor` -> `ferrovision-tensor`; the umbrella crate is `ferrovision` itself.
fn full_name(short: &str) -> String {
    let short = short.trim().trim_matches('`');
    if short == "ferrovision" || short.starts_with("ferrovision-") {
        short.to_string()
    } else {
        format!("ferrovision-{short}")
    }
}

struct Row {
    level: u32,
    deps: BTreeSet<String>,
}

/// The rows of the table between the `crate-graph` markers.
fn documented_graph() -> BTreeMap<String, Row> {
    let path = workspace_root().join("docs/architecture.md");
    let text = std::fs::read_to_string(&path).expect("docs/architecture.md");
    let begin = text
        .find("<!-- crate-graph:begin -->")
        .expect("begin marker");
    let end = text.find("<!-- crate-graph:end -->").expect("end marker");
    let mut rows = BTreeMap::new();
    for line in text[begin..end].lines().filter(|l| l.starts_with('|')) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        // ["", level, crate, depends on, concern, ""]
        let Ok(level) = cells[1].parse::<u32>() else {
            continue; // header and separator rows
        };
        let deps = if cells[3] == "—" {
            BTreeSet::new()
        } else {
            cells[3].split(',').map(full_name).collect()
        };
        let name = full_name(cells[2]);
        assert!(
            rows.insert(name.clone(), Row { level, deps }).is_none(),
            "{name} listed twice"
        );
    }
    rows
}

/// The host triple (`cargo -vV`): the resolve is filtered to it so that no package of another
/// platform (never downloaded here) is needed.
fn host_triple() -> String {
    let out = Command::new(env!("CARGO"))
        .arg("-vV")
        .output()
        .expect("run cargo -vV");
    let text = String::from_utf8(out.stdout).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("host: "))
        .expect("cargo -vV names the host")
        .to_string()
}

fn cargo_metadata() -> Value {
    let out = Command::new(env!("CARGO"))
        .current_dir(workspace_root())
        .args(["metadata", "--format-version", "1", "--offline", "--locked"])
        .args(["--filter-platform", &host_triple()])
        .output()
        .expect("run cargo metadata");
    assert!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("cargo metadata JSON")
}

fn is_normal(dep: &Value) -> bool {
    dep["dep_kinds"]
        .as_array()
        .is_some_and(|kinds| kinds.iter().any(|k| k["kind"].is_null()))
}

#[test]
fn documented_crate_graph_matches_cargo_metadata() {
    let doc = documented_graph();
    let meta = cargo_metadata();
    let members: BTreeSet<String> = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["source"].is_null())
        .map(|p| p["name"].as_str().unwrap().to_string())
        .collect();
    let documented: BTreeSet<String> = doc.keys().cloned().collect();
    assert_eq!(
        documented, members,
        "crates in docs/architecture.md vs the workspace"
    );

    for pkg in meta["packages"].as_array().unwrap() {
        if !pkg["source"].is_null() {
            continue;
        }
        let name = pkg["name"].as_str().unwrap();
        let actual: BTreeSet<String> = pkg["dependencies"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["kind"].is_null())
            .map(|d| d["name"].as_str().unwrap().to_string())
            .filter(|d| members.contains(d))
            .collect();
        let row = &doc[name];
        assert_eq!(row.deps, actual, "dependencies of {name}");
        for dep in &actual {
            assert!(
                doc[dep].level < row.level,
                "{name} (level {}) depends on {dep} (level {}): dependencies must point down",
                row.level,
                doc[dep].level
            );
        }
    }
}

#[test]
fn nn_pulls_in_no_image_or_video_crate() {
    let meta = cargo_metadata();
    let nodes = meta["resolve"]["nodes"].as_array().unwrap();
    let by_id: BTreeMap<&str, &Value> = nodes
        .iter()
        .map(|n| (n["id"].as_str().unwrap(), n))
        .collect();
    let name_of: BTreeMap<&str, &str> = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["id"].as_str().unwrap(), p["name"].as_str().unwrap()))
        .collect();
    let root = name_of
        .iter()
        .find(|(_, n)| **n == "ferrovision-nn")
        .map(|(id, _)| *id)
        .unwrap();
    let mut seen = BTreeSet::new();
    let mut stack = vec![root];
    while let Some(id) = stack.pop() {
        if !seen.insert(id) {
            continue;
        }
        for dep in by_id[id]["deps"].as_array().unwrap() {
            if is_normal(dep) {
                stack.push(dep["pkg"].as_str().unwrap());
            }
        }
    }
    let names: BTreeSet<&str> = seen.iter().map(|id| name_of[id]).collect();
    assert!(
        names.contains("ferrovision-tensor"),
        "walk reached the engine"
    );
    for banned in ["image", "zune-jpeg", "zune-core", "png", "ferrovision-data"] {
        assert!(
            !names.contains(banned),
            "ferrovision-nn depends on {banned} (through {names:?})"
        );
    }
}
