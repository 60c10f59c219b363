//! `meshrelay sim` from the outside: bad scenarios exit with code 2 and
//! name the field; the same flags print the same report.

use std::process::{Command, Output};

fn sim(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_meshrelay"))
        .arg("sim")
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn a_bad_field_exits_2_and_names_it() {
    let dir = std::env::temp_dir().join(format!("meshrelay-sim-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("bad.toml");
    std::fs::write(&file, "[audience]\narrivals = \"0:10,60:-2\"\n").unwrap();
    let file = file.to_str().unwrap().to_string();
    for (args, field, detail) in [
        (
            vec!["--capacity-mix", "0:20,1"],
            "audience.capacity_mix",
            "no ':'",
        ),
        (
            vec!["--capacity-mix", "0:20,1:x"],
            "audience.capacity_mix",
            "weight",
        ),
        (vec!["--arrivals", "0:-5"], "audience.arrivals", "rate -5"),
        (
            vec!["--scenario", file.as_str()],
            "audience.arrivals",
            "rate -2",
        ),
        (
            vec!["--session", "pareto:600:1"],
            "audience.session",
            "alpha",
        ),
        (
            vec!["--policy", "fastest-first"],
            "policy",
            "capacity-first, shallowest, stable-first or seed",
        ),
    ] {
        let out = sim(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(field), "{args:?}: {stderr}");
        assert!(stderr.contains(detail), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn the_same_flags_print_the_same_text_and_json() {
    let base = ["--duration", "120", "--initial", "500", "--seed", "9"];
    for extra in [
        &[][..],
        &["--json"][..],
        &["--policy", "seed", "--runs", "2"][..],
    ] {
        let args: Vec<&str> = base.iter().chain(extra).copied().collect();
        let a = sim(&args);
        let b = sim(&args);
        assert!(a.status.success(), "{}", String::from_utf8_lossy(&a.stderr));
        assert!(!a.stdout.is_empty());
        assert_eq!(a.stdout, b.stdout, "{args:?}");
    }
    let json = sim(&[&base[..], &["--json"]].concat());
    let doc: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(doc["summary"]["seed"], 9);
    assert!(doc.get("timing_non_deterministic").is_none());
}
