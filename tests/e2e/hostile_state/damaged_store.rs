//! A damaged, unreadable or misplaced store is refused by every command with exit 6 naming the
//! store and the problem; release ids are never reused.

use std::path::Path;

use super::{STATE, as_nobody, assert_refused, is_root, with_one_release};
use crate::harness::Sandbox;

/// Every verb that opens the store, reading or writing.
const COMMANDS: [&[&str]; 6] = [
    &["status"],
    &["list"],
    &["status", "d-1", "--json"],
    &["logs", "d-1"],
    &["run", "p.yaml"],
    &["resume", "d-1"],
];

#[test]
fn a_zero_byte_store_is_refused_by_every_command_and_its_ids_are_not_reused() {
    let sb = with_one_release();
    let events = sb.read(".relflow/releases/d-1/events.jsonl");
    let log = sb.read(".relflow/releases/d-1/build/hi/script_output.log");
    std::fs::write(sb.path().join(".relflow/relflow.db"), "").unwrap();
    for args in COMMANDS {
        let out = sb.run(args);
        assert_refused(&out, "is damaged: it is empty (0 bytes)");
    }
    // Nothing was appended to the old release's files.
    assert_eq!(sb.read(".relflow/releases/d-1/events.jsonl"), events);
    assert_eq!(
        sb.read(".relflow/releases/d-1/build/hi/script_output.log"),
        log
    );
    assert_eq!(
        std::fs::metadata(sb.path().join(".relflow/relflow.db"))
            .unwrap()
            .len(),
        0,
        "the damaged store is left as it is"
    );
}

#[test]
fn a_store_replaced_by_a_new_one_never_reuses_a_release_id() {
    let sb = with_one_release();
    let events = sb.read(".relflow/releases/d-1/events.jsonl");
    // The user moves the store aside: the next run starts a new, empty store.
    std::fs::rename(
        sb.path().join(".relflow/relflow.db"),
        sb.path().join("old.db"),
    )
    .unwrap();
    let out = sb.run(&["run", "p.yaml"]);
    out.expect_code(0);
    assert!(
        out.stdout.contains("release d-2 completed"),
        "{}",
        out.stdout
    );
    assert_eq!(sb.read(".relflow/releases/d-1/events.jsonl"), events);
    let list = sb.run(&["list"]);
    list.expect_code(0);
    assert!(
        list.stdout.contains("d-2") && !list.stdout.contains("d-1 "),
        "{}",
        list.stdout
    );
    // The next id counts on from the store's newest.
    let out = sb.run(&["run", "p.yaml"]);
    assert!(
        out.stdout.contains("release d-3 completed"),
        "{}",
        out.stdout
    );
}

#[test]
fn a_dangling_symlink_as_store_is_refused() {
    let sb = with_one_release();
    let db = sb.path().join(".relflow/relflow.db");
    std::fs::rename(&db, sb.path().join("elsewhere.db")).unwrap();
    std::os::unix::fs::symlink(sb.path().join("gone/relflow.db"), &db).unwrap();
    for args in COMMANDS {
        let out = sb.run(args);
        assert_refused(&out, "is a symlink to");
        assert!(
            out.stderr.contains("which does not exist"),
            "{}",
            out.stderr
        );
    }
    assert!(
        !sb.exists("gone"),
        "nothing is created at the link's target"
    );
}

#[test]
fn a_store_that_is_a_folder_or_not_sqlite_is_refused() {
    let sb = with_one_release();
    let db = sb.path().join(".relflow/relflow.db");
    std::fs::remove_file(&db).unwrap();
    std::fs::create_dir(&db).unwrap();
    for args in COMMANDS {
        assert_refused(&sb.run(args), "it is a directory, not a file");
    }
    std::fs::remove_dir(&db).unwrap();
    std::fs::write(&db, "these are not the releases you are looking for\n").unwrap();
    for args in COMMANDS {
        assert_refused(&sb.run(args), "it is not an SQLite database");
    }
}

/// The issue's `chmod 000` store. As root, file modes stop nothing, so the commands run as
/// `nobody`; as another user, mode 000 is enough.
#[test]
fn a_store_the_user_cannot_read_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let sb = with_one_release();
    let db = sb.path().join(".relflow/relflow.db");
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o000)).unwrap();
    for args in COMMANDS {
        let out = if is_root() {
            match as_nobody(&sb, args) {
                Some(out) => out,
                None => return,
            }
        } else {
            sb.run(args)
        };
        out.expect_code(STATE);
        assert!(
            out.stderr.contains("relflow.db") && out.stderr.contains("permission denied"),
            "{args:?}: {}",
            out.stderr
        );
        assert!(!out.stdout.contains("no releases yet"), "{}", out.stdout);
    }
}

#[test]
fn a_state_dir_that_is_not_a_folder_is_refused() {
    let sb = Sandbox::new();
    sb.write("p.yaml", super::ONE_TASK);
    for args in [
        &["--state-dir", "/dev/null", "status"][..],
        &["--state-dir", "/dev/null", "list"],
        &["--state-dir", "/dev/null", "run", "p.yaml"],
    ] {
        let out = sb.run(args);
        out.expect_code(STATE);
        assert!(
            out.stderr
                .contains("state directory /dev/null: it is a device, not a directory"),
            "{args:?}: {}",
            out.stderr
        );
    }
    sb.write("plain-file", "");
    let out = sb.run(&["--state-dir", "plain-file", "list"]);
    out.expect_code(STATE);
    assert!(
        out.stderr.contains("it is a file, not a directory"),
        "{}",
        out.stderr
    );
}

/// A store that lost a table used to start a release that then stayed `running` with no
/// runner; now it is refused before anything is recorded.
#[test]
fn a_store_missing_a_table_is_refused_before_a_release_starts() {
    let sb = with_one_release();
    let db = sb.path().join(".relflow/relflow.db");
    drop_table(&db, "attempts");
    let out = sb.run(&["run", "p.yaml"]);
    assert_refused(&out, "table `attempts` is missing");
    assert!(
        !sb.exists(".relflow/releases/d-2"),
        "no release was started"
    );
    assert_eq!(release_ids(&db), ["d-1"]);
    for args in COMMANDS {
        assert_refused(&sb.run(args), "table `attempts` is missing");
    }
}

fn drop_table(db: &Path, table: &str) {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.execute_batch(&format!("DROP TABLE {table}")).unwrap();
}

fn release_ids(db: &Path) -> Vec<String> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut stmt = conn.prepare("SELECT id FROM releases ORDER BY id").unwrap();
    stmt.query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}
