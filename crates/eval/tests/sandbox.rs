//! The sandbox against hostile samples: each is stopped or contained, scored as failed, and the
//! harness returns promptly. Run as root (as here) every isolation layer applies and is
//! asserted; elsewhere the tests check what the OS granted.

use std::net::TcpListener;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use llama31_eval::humaneval::{evaluate_samples, Mode, Task};
use llama31_eval::sandbox::{Sandbox, SandboxConfig, Status};

/// A sandbox whose uids (`base`, `base + 1`, …) no other test uses, so tests running at once
/// do not share process counts.
fn sandbox(timeout_s: f64, base: u32) -> Sandbox {
    Sandbox::new(SandboxConfig {
        timeout: Duration::from_secs_f64(timeout_s),
        base_uid: base,
        ..SandboxConfig::default()
    })
    .expect("the sandbox starts")
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// A task whose test passes for `f(1) == 2`, so a hostile sample that also defines `f`
/// correctly fails only because of what the sandbox stops.
fn task() -> Task {
    Task {
        task_id: "S/0".into(),
        prompt: "def f(x):\n".into(),
        entry_point: "f".into(),
        canonical_solution: Some("    return x + 1\n".into()),
        test: "def check(candidate):\n    assert candidate(1) == 2\n".into(),
    }
}

/// Scores `body` (the function body, run when the test calls `f`) and returns (passed, result,
/// seconds).
fn score(sb: &Sandbox, body: &str) -> (bool, String, f64) {
    let start = Instant::now();
    let report = evaluate_samples(
        sb,
        &[task()],
        vec![(0, 0, body.to_string())],
        Mode::Completion,
        1,
        &mut |_| {},
    )
    .expect("the harness runs");
    let r = &report.results[0];
    (r.passed, r.result.clone(), start.elapsed().as_secs_f64())
}

/// Processes owned by `uid` (from /proc).
fn processes_of(uid: u32) -> usize {
    let mut n = 0;
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let status = entry.path().join("status");
        if let Ok(text) = std::fs::read_to_string(status) {
            if text.lines().any(|l| {
                l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some(&uid.to_string())
            }) {
                n += 1;
            }
        }
    }
    n
}

#[test]
fn correct_and_failing_samples_are_told_apart() {
    let sb = sandbox(5.0, 60008);
    let (passed, result, _) = score(&sb, "    return x + 1\n");
    assert!(passed, "{result}");
    let (passed, result, _) = score(&sb, "    return x\n");
    assert!(!passed);
    assert_eq!(result, "failed (exit 1)");
    // A program that exits with status 0 before the tests ran does not pass.
    let (passed, result, _) = score(&sb, "    return x + 1\nimport sys\nsys.exit(0)\n");
    assert!(!passed);
    assert_eq!(result, "exited early");
    // Writing inside its own directory works.
    let (passed, result, _) = score(
        &sb,
        "    open('scratch.txt', 'w').write('ok')\n    return x + 1\n",
    );
    assert!(passed, "{result}");
}

#[test]
fn sleeping_forever_is_killed_at_the_timeout() {
    let sb = sandbox(1.0, 60016);
    let (passed, result, secs) = score(&sb, "    import time\n    time.sleep(10**6)\n");
    assert!(!passed);
    assert_eq!(result, "timed out");
    assert!(secs < 5.0, "took {secs} s");
}

#[test]
fn fork_bomb_is_contained() {
    let sb = sandbox(2.0, 60024);
    let body = "    import os\n    while True:\n        try:\n            os.fork()\n        except OSError:\n            pass\n";
    let (passed, result, secs) = score(&sb, body);
    assert!(!passed, "{result}");
    assert!(secs < 8.0, "took {secs} s");
    if let Some(uid) = sb.containment().uid {
        // Every process of the run is gone (the PID namespace dies with its init).
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(processes_of(uid), 0, "processes of uid {uid} survived");
    }
}

#[test]
fn escaped_children_die_with_the_run() {
    let sb = sandbox(5.0, 60032);
    if !sb.containment().pid_namespace {
        eprintln!("no PID namespace here: escaped children are not contained");
        return;
    }
    // A child that leaves the process group and outlives the program.
    let body = "    import os, time\n    if os.fork() == 0:\n        os.setsid()\n        time.sleep(10**6)\n    return x + 1\n";
    let (passed, result, _) = score(&sb, body);
    assert!(passed, "{result}");
    std::thread::sleep(Duration::from_millis(200));
    if let Some(uid) = sb.containment().uid {
        assert_eq!(processes_of(uid), 0, "the escaped child survived");
    }
}

#[test]
fn memory_hog_fails() {
    let sb = sandbox(10.0, 60040);
    let body = "    hog = []\n    while True:\n        hog.append(bytearray(50 * 2**20))\n";
    let (passed, result, secs) = score(&sb, body);
    assert!(!passed);
    assert_eq!(result, "failed (exit 1)", "MemoryError expected");
    assert!(secs < 10.0, "took {secs} s");
}

#[test]
fn sockets_are_blocked() {
    let sb = sandbox(5.0, 60048);
    // A listener of ours on loopback: a connection from the sample would be accepted.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let body = format!(
        "    import socket\n    s = socket.create_connection(('127.0.0.1', {port}), timeout=2)\n    return x + 1\n"
    );
    let (passed, result, _) = score(&sb, &body);
    if is_root() {
        assert!(sb.containment().network_namespace);
    }
    if sb.containment().network_namespace {
        assert!(!passed, "{result}");
        assert!(
            listener.accept().is_err(),
            "the sample reached the loopback listener"
        );
        // An address outside (TEST-NET-1, never routed): no route in the namespace, so the
        // attempt fails at once without sending anything.
        let body = "    import socket\n    s = socket.create_connection(('192.0.2.1', 80), timeout=2)\n    return x + 1\n";
        let (passed, result, secs) = score(&sb, body);
        assert!(!passed, "{result}");
        assert!(secs < 2.0, "the connection was attempted ({secs} s)");
    } else {
        eprintln!("no network namespace here: network access is not contained");
    }
}

#[test]
fn writes_outside_the_directory_fail() {
    let sb = sandbox(5.0, 60056);
    // A world-writable directory outside the sandbox's own.
    let outside = std::env::temp_dir().join(format!("llama31-outside-{}", std::process::id()));
    std::fs::create_dir_all(&outside).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&outside, std::fs::Permissions::from_mode(0o777)).unwrap();
    }
    let target: PathBuf = outside.join("written.txt");
    let repo_file = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("sandbox-escape.txt");
    let body = format!(
        "    open({:?}, 'w').write('x')\n    return x + 1\n",
        target.display().to_string()
    );
    let (passed, result, _) = score(&sb, &body);
    let contained = sb.containment().mount_namespace || sb.containment().uid.is_some();
    if is_root() {
        assert!(sb.containment().mount_namespace && sb.containment().uid.is_some());
    }
    if contained {
        assert!(!passed, "{result}");
        assert!(!target.exists(), "the sample wrote {}", target.display());
        let body = format!(
            "    open({:?}, 'w').write('x')\n    return x + 1\n",
            repo_file.display().to_string()
        );
        let (passed, result, _) = score(&sb, &body);
        assert!(!passed, "{result}");
        assert!(!repo_file.exists(), "the sample wrote into the repository");
        let (passed, result, _) = score(
            &sb,
            "    open('/dev/shm/llama31-x', 'w').write('x')\n    return x + 1\n",
        );
        assert!(!passed, "{result}");
        assert!(!std::path::Path::new("/dev/shm/llama31-x").exists());
    } else {
        eprintln!("neither a mount namespace nor a separate uid here: writes are not contained");
    }
    let _ = std::fs::remove_file(&target);
    let _ = std::fs::remove_file(&repo_file);
    std::fs::remove_dir_all(&outside).unwrap();
}

#[test]
fn runs_leave_no_directory_behind() {
    let sb = sandbox(5.0, 60064);
    let out = sb.run("import os\nprint(os.getcwd())\n", 0).unwrap();
    assert_eq!(out.status, Status::Exited(0));
    let dir = PathBuf::from(out.stdout.trim());
    assert!(dir
        .file_name()
        .unwrap()
        .to_string_lossy()
        .starts_with("llama31-sandbox-"));
    assert!(!dir.exists(), "{} was left behind", dir.display());
    // The environment is empty but for PATH, LANG and HOME.
    let out = sb.run("import os\nprint(sorted(os.environ))\n", 0).unwrap();
    assert_eq!(out.stdout.trim(), "['HOME', 'LANG', 'PATH']");
}
