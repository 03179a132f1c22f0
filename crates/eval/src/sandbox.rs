//! Running untrusted Python programs (model-written code and its tests) with limits.
//!
//! Each run gets a fresh temporary directory as its working directory, `python3 -I -B prog.py`
//! with an empty environment and no standard input, its own process group, and resource limits
//! (`RLIMIT_AS`, `RLIMIT_NPROC`, `RLIMIT_CPU`, `RLIMIT_FSIZE`, `RLIMIT_NOFILE`, no core files,
//! `no_new_privs`). A run that outlives the wall-clock limit is killed with SIGKILL to its process
//! group. Where the OS allows (the harness runs as root, or unprivileged user namespaces are
//! enabled), more is applied, each probed once when the sandbox is created and recorded in
//! [`Containment`]:
//!
//! - a new **network namespace**: only a loopback interface that is down, so every connection,
//!   loopback included, fails without a packet leaving;
//! - a new **PID namespace** whose init is the program: when it exits or is killed, every process
//!   it started dies with it (even ones that left the process group);
//! - a new **mount namespace** in which every mount except the working directory (and `/proc`,
//!   `/sys`, `/dev`, `/dev/pts`) is remounted read-only, so writes outside the working directory
//!   fail (`/tmp` and `/dev/shm` included);
//! - as root, a **dedicated unprivileged uid/gid** per concurrent run (no supplementary groups),
//!   so file permissions apply, `RLIMIT_NPROC` counts exactly the run's processes, and the
//!   program cannot signal anything else.
//!
//! Not contained: reading files the sandbox uid may read (world-readable files), CPU time within
//! the limits, and memory up to `RLIMIT_AS` per process times the process limit.

use std::ffi::CString;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::{EvalError, Result};

/// Limits and requested isolation of a sandbox.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// The Python interpreter (must be runnable by the sandbox uid).
    pub python: PathBuf,
    /// Wall-clock limit of one run.
    pub timeout: Duration,
    /// `RLIMIT_AS` (virtual memory per process), bytes.
    pub memory_bytes: u64,
    /// `RLIMIT_NPROC` (processes and threads of the sandbox uid).
    pub max_processes: u64,
    /// `RLIMIT_FSIZE` (largest file the program may write), bytes.
    pub file_size_bytes: u64,
    /// `RLIMIT_NOFILE`.
    pub open_files: u64,
    /// First uid (and gid) of the dedicated sandbox users when running as root; concurrent run
    /// `i` uses `base_uid + i`. The default, `61000 + 64 × (pid mod 64)`, keeps below 65534
    /// (`nobody`) and makes two harness processes unlikely to share uids.
    pub base_uid: u32,
    /// Try the namespaces and the dedicated uid (see the module docs); `false` applies only the
    /// limits, the process group and the temporary directory.
    pub isolate: bool,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        Self {
            python: default_python(),
            timeout: Duration::from_secs(10),
            memory_bytes: 1 << 30,
            max_processes: 16,
            file_size_bytes: 16 << 20,
            open_files: 64,
            base_uid: 61_000 + 64 * (std::process::id() % 64),
            isolate: true,
        }
    }
}

/// `/usr/bin/python3` or `/usr/local/bin/python3` when present (a per-user shim in a home
/// directory may not be runnable by the sandbox uid), else `python3` from `PATH`.
pub fn default_python() -> PathBuf {
    for p in ["/usr/bin/python3", "/usr/local/bin/python3"] {
        if Path::new(p).is_file() {
            return PathBuf::from(p);
        }
    }
    if let Some(paths) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&paths) {
            let p = dir.join("python3");
            if p.is_file() {
                return p;
            }
        }
    }
    PathBuf::from("python3")
}

/// What the sandbox actually applies (probed when it is created).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Containment {
    pub network_namespace: bool,
    pub pid_namespace: bool,
    pub mount_namespace: bool,
    /// A user namespace (how the namespaces are had without root).
    pub user_namespace: bool,
    /// The dedicated uid of the first concurrent run, when running as root.
    pub uid: Option<u32>,
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Exited with this code.
    Exited(i32),
    /// Killed by this signal (not by the harness).
    Signaled(i32),
    /// Killed by the harness at the wall-clock limit.
    TimedOut,
}

/// The result of one run.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub status: Status,
    /// Up to the last 64 KiB of standard output.
    pub stdout: String,
    /// Up to the last 4 KiB of standard error.
    pub stderr: String,
    pub seconds: f64,
}

impl Outcome {
    /// Exited with code 0.
    pub fn success(&self) -> bool {
        self.status == Status::Exited(0)
    }
}

/// Everything the child needs between fork and exec, prepared beforehand (no allocation there).
#[derive(Debug)]
struct ChildPlan {
    workdir: CString,
    uid: Option<libc::uid_t>,
    net: bool,
    pid: bool,
    mnt: bool,
    user: bool,
    /// Mount points to remount read-only, with the flags they keep.
    remounts: Vec<(CString, libc::c_ulong)>,
    limits: Vec<(libc::__rlimit_resource_t, libc::rlim_t)>,
}

/// A configured sandbox. `run` may be called from several threads at once with distinct slots.
#[derive(Debug)]
pub struct Sandbox {
    config: SandboxConfig,
    containment: Containment,
    remounts: Vec<(CString, libc::c_ulong)>,
    root: PathBuf,
    counter: AtomicU64,
}

fn check(ret: libc::c_int) -> std::io::Result<()> {
    if ret == -1 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(())
    }
}

impl Sandbox {
    /// Creates a sandbox and probes which isolation the OS grants (a trivial program is run with
    /// everything requested, then with less until it runs). Fails when even the plain run
    /// fails (e.g. the interpreter is missing).
    pub fn new(config: SandboxConfig) -> Result<Sandbox> {
        let root = std::env::temp_dir()
            .canonicalize()
            .map_err(|e| EvalError::io(std::env::temp_dir(), e))?;
        // SAFETY: geteuid has no preconditions and cannot fail.
        let is_root = unsafe { libc::geteuid() } == 0;
        let remounts = read_only_remounts();
        let mut sandbox = Sandbox {
            config,
            containment: Containment {
                network_namespace: false,
                pid_namespace: false,
                mount_namespace: false,
                user_namespace: false,
                uid: None,
            },
            remounts,
            root,
            counter: AtomicU64::new(0),
        };
        let mut candidates = Vec::new();
        if sandbox.config.isolate {
            let uid = is_root.then_some(sandbox.config.base_uid);
            let user = !is_root;
            let full = Containment {
                network_namespace: true,
                pid_namespace: true,
                mount_namespace: true,
                user_namespace: user,
                uid,
            };
            candidates.push(full.clone());
            candidates.push(Containment {
                mount_namespace: false,
                ..full.clone()
            });
            candidates.push(Containment {
                mount_namespace: false,
                pid_namespace: false,
                ..full.clone()
            });
            if is_root {
                candidates.push(Containment {
                    network_namespace: false,
                    pid_namespace: false,
                    mount_namespace: false,
                    user_namespace: false,
                    uid,
                });
            }
        }
        candidates.push(Containment {
            network_namespace: false,
            pid_namespace: false,
            mount_namespace: false,
            user_namespace: false,
            uid: None,
        });
        let mut last = String::new();
        for c in candidates {
            sandbox.containment = c;
            match sandbox.run("import sys\nsys.stdout.write('ok')\n", 0) {
                Ok(out) if out.success() && out.stdout == "ok" => {
                    tracing::info!(containment = ?sandbox.containment, "sandbox ready");
                    return Ok(sandbox);
                }
                Ok(out) => last = format!("{:?}: {}", out.status, out.stderr.trim()),
                Err(e) => last = e.to_string(),
            }
            tracing::info!(containment = ?sandbox.containment, error = %last, "sandbox probe failed");
        }
        Err(EvalError::Sandbox(format!(
            "{} cannot run a trivial program: {last}",
            sandbox.config.python.display()
        )))
    }

    /// What is applied.
    pub fn containment(&self) -> &Containment {
        &self.containment
    }

    /// The configuration.
    pub fn config(&self) -> &SandboxConfig {
        &self.config
    }

    /// Runs `program` (Python source) in a fresh temporary directory. `slot` distinguishes
    /// concurrent runs (each gets its own uid when running as root). `Err` only when the run
    /// could not be set up; whatever the program does is in the [`Outcome`].
    pub fn run(&self, program: &str, slot: usize) -> Result<Outcome> {
        let uid = match self.containment.uid {
            Some(base) => Some(
                u32::try_from(slot)
                    .ok()
                    .and_then(|s| base.checked_add(s))
                    .ok_or_else(|| EvalError::Sandbox(format!("slot {slot} has no uid")))?,
            ),
            None => None,
        };
        let dir = self.make_dir(slot, uid)?;
        let result = self.run_in(&dir, program, uid);
        if let Err(e) = std::fs::remove_dir_all(&dir) {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot remove a sandbox directory");
        }
        result
    }

    fn make_dir(&self, slot: usize, uid: Option<u32>) -> Result<PathBuf> {
        loop {
            let n = self.counter.fetch_add(1, Ordering::Relaxed);
            let dir = self
                .root
                .join(format!("llama31-sandbox-{}-{slot}-{n}", std::process::id()));
            match std::fs::create_dir(&dir) {
                Ok(()) => {
                    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
                        .map_err(|e| EvalError::io(&dir, e))?;
                    if let Some(u) = uid {
                        std::os::unix::fs::chown(&dir, Some(u), Some(u))
                            .map_err(|e| EvalError::io(&dir, e))?;
                    }
                    return Ok(dir);
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(EvalError::io(&dir, e)),
            }
        }
    }

    fn run_in(&self, dir: &Path, program: &str, uid: Option<u32>) -> Result<Outcome> {
        let prog = dir.join("prog.py");
        std::fs::write(&prog, program).map_err(|e| EvalError::io(&prog, e))?;
        let out_path = dir.join(".stdout");
        let err_path = dir.join(".stderr");
        let open = |p: &Path| {
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(p)
                .map_err(|e| EvalError::io(p, e))
        };
        let stdout = open(&out_path)?;
        let stderr = open(&err_path)?;
        // Read back through our own descriptors: the program may unlink or replace the files.
        let mut out_read = stdout
            .try_clone()
            .map_err(|e| EvalError::io(&out_path, e))?;
        let mut err_read = stderr
            .try_clone()
            .map_err(|e| EvalError::io(&err_path, e))?;
        let c = &self.containment;
        let timeout_s = self.config.timeout.as_secs_f64().ceil() as libc::rlim_t;
        let plan = Arc::new(ChildPlan {
            workdir: CString::new(dir.as_os_str().as_bytes())
                .map_err(|_| EvalError::Sandbox(format!("{} holds a NUL byte", dir.display())))?,
            uid,
            net: c.network_namespace,
            pid: c.pid_namespace,
            mnt: c.mount_namespace,
            user: c.user_namespace,
            remounts: if c.mount_namespace {
                self.remounts.clone()
            } else {
                Vec::new()
            },
            limits: vec![
                (libc::RLIMIT_AS, self.config.memory_bytes),
                (libc::RLIMIT_NPROC, self.config.max_processes),
                (libc::RLIMIT_CPU, timeout_s + 1),
                (libc::RLIMIT_FSIZE, self.config.file_size_bytes),
                (libc::RLIMIT_NOFILE, self.config.open_files),
                (libc::RLIMIT_CORE, 0),
            ],
        });
        let mut cmd = Command::new(&self.config.python);
        cmd.args(["-I", "-B", "prog.py"])
            .current_dir(dir)
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("LANG", "C.UTF-8")
            .env("HOME", dir)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr);
        let child_plan = Arc::clone(&plan);
        // SAFETY: the closure runs in the forked child before exec and only makes
        // async-signal-safe system calls (setpgid, prctl, unshare, mount, chdir, sigprocmask,
        // fork, waitpid, sigtimedwait, setrlimit, setgroups, setgid, setuid, close, kill, _exit)
        // on data prepared before the fork; it allocates nothing and takes no locks.
        unsafe {
            cmd.pre_exec(move || child_setup(&child_plan));
        }
        let start = Instant::now();
        let mut child = cmd.spawn().map_err(|e| {
            EvalError::Sandbox(format!("starting {}: {e}", self.config.python.display()))
        })?;
        let pgid = child.id() as libc::pid_t;
        let deadline = start + self.config.timeout;
        let mut pause = Duration::from_millis(1);
        let status = loop {
            match child.try_wait() {
                Ok(Some(st)) => break Some(st),
                Ok(None) => {}
                Err(e) => return Err(EvalError::Sandbox(format!("waiting for the program: {e}"))),
            }
            let now = Instant::now();
            if now >= deadline {
                break None;
            }
            std::thread::sleep(pause.min(deadline - now));
            pause = (pause * 2).min(Duration::from_millis(20));
        };
        let status = match status {
            Some(st) => decode(st),
            None => {
                if c.pid_namespace {
                    // The supervisor kills the namespace and reaps its init; wait for that a
                    // little before killing the group outright.
                    // SAFETY: kill only sends a signal to our own child.
                    unsafe {
                        libc::kill(pgid, libc::SIGTERM);
                    }
                    let grace = Instant::now() + Duration::from_secs(2);
                    while Instant::now() < grace && matches!(child.try_wait(), Ok(None)) {
                        std::thread::sleep(Duration::from_millis(2));
                    }
                }
                // SAFETY: killpg only sends a signal; pgid is the group the child created.
                unsafe {
                    libc::killpg(pgid, libc::SIGKILL);
                }
                let _ = child.wait();
                Status::TimedOut
            }
        };
        // Stray children left in the group after a normal exit.
        // SAFETY: as above.
        unsafe {
            libc::killpg(pgid, libc::SIGKILL);
        }
        let seconds = start.elapsed().as_secs_f64();
        Ok(Outcome {
            status,
            stdout: read_tail(&mut out_read, 64 << 10),
            stderr: read_tail(&mut err_read, 4 << 10),
            seconds,
        })
    }
}

fn decode(st: std::process::ExitStatus) -> Status {
    match (st.code(), st.signal()) {
        (Some(code), _) => Status::Exited(code),
        (None, Some(sig)) => Status::Signaled(sig),
        (None, None) => Status::Exited(-1),
    }
}

fn read_tail(f: &mut File, max: u64) -> String {
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(max)));
    let mut bytes = Vec::new();
    let _ = f.take(max).read_to_end(&mut bytes);
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Decodes the octal escapes (`\040`) of a `/proc/self/mountinfo` path.
fn unescape_mount_path(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 4 <= b.len() {
            let digits = &b[i + 1..i + 4];
            if digits.iter().all(|d| (b'0'..=b'7').contains(d)) {
                let v = digits
                    .iter()
                    .fold(0u32, |acc, d| acc * 8 + u32::from(d - b'0'));
                if let Ok(byte) = u8::try_from(v) {
                    out.push(byte);
                    i += 4;
                    continue;
                }
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

/// The writable mounts to make read-only inside the sandbox's mount namespace, with the flags
/// each keeps: every mount except `/proc`, `/sys` and what is below them, `/dev` and `/dev/pts`
/// (device nodes and terminals), and mounts that are read-only already.
fn read_only_remounts() -> Vec<(CString, libc::c_ulong)> {
    let Ok(text) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    let mut out: Vec<(CString, libc::c_ulong)> = Vec::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let (Some(point), Some(opts)) = (fields.get(4), fields.get(5)) else {
            continue;
        };
        let path = unescape_mount_path(point);
        let skip = |p: &[u8], prefix: &[u8]| p == prefix || p.starts_with(&[prefix, b"/"].concat());
        if skip(&path, b"/proc") || skip(&path, b"/sys") || path == b"/dev" || path == b"/dev/pts" {
            continue;
        }
        let mut flags: libc::c_ulong = 0;
        let mut read_only = false;
        for o in opts.split(',') {
            flags |= match o {
                "ro" => {
                    read_only = true;
                    0
                }
                "nosuid" => libc::MS_NOSUID,
                "nodev" => libc::MS_NODEV,
                "noexec" => libc::MS_NOEXEC,
                "noatime" => libc::MS_NOATIME,
                "nodiratime" => libc::MS_NODIRATIME,
                "relatime" => libc::MS_RELATIME,
                "strictatime" => libc::MS_STRICTATIME,
                _ => 0,
            };
        }
        if read_only {
            continue;
        }
        if let Ok(c) = CString::new(path) {
            if !out.iter().any(|(p, _)| p == &c) {
                out.push((c, flags));
            }
        }
    }
    out
}

/// Runs in the forked child before exec. Async-signal-safe calls only; nothing allocates.
fn child_setup(plan: &ChildPlan) -> std::io::Result<()> {
    // SAFETY (whole function): plain system calls on prepared, NUL-terminated strings and
    // integers; pointers passed are either valid C strings owned by `plan` or null where the
    // call documents null as allowed.
    unsafe {
        check(libc::setpgid(0, 0))?;
        check(libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0))?;
        let mut flags = 0;
        if plan.user {
            flags |= libc::CLONE_NEWUSER;
        }
        if plan.net {
            flags |= libc::CLONE_NEWNET;
        }
        if plan.mnt {
            flags |= libc::CLONE_NEWNS;
        }
        if plan.pid {
            flags |= libc::CLONE_NEWPID;
        }
        if flags != 0 {
            check(libc::unshare(flags))?;
        }
        if plan.mnt {
            let none = c"none".as_ptr();
            let root = c"/".as_ptr();
            check(libc::mount(
                none,
                root,
                std::ptr::null(),
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            ))?;
            let wd = plan.workdir.as_ptr();
            check(libc::mount(
                wd,
                wd,
                std::ptr::null(),
                libc::MS_BIND,
                std::ptr::null(),
            ))?;
            for (point, keep) in &plan.remounts {
                check(libc::mount(
                    none,
                    point.as_ptr(),
                    std::ptr::null(),
                    libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY | keep,
                    std::ptr::null(),
                ))?;
            }
            // Enter the bind mount (the old working directory is on the read-only mount).
            check(libc::chdir(wd))?;
        }
        check(libc::setrlimit(
            libc::RLIMIT_CORE,
            &libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            },
        ))?;
        if plan.pid {
            // The first child is init of the new PID namespace: it becomes the program. This
            // process waits for it and exits the same way, so the harness sees its status; on
            // SIGTERM from the harness it kills it (and with it the whole namespace) and reaps
            // it, so nothing is left unreaped.
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGTERM);
            libc::sigaddset(&mut set, libc::SIGCHLD);
            check(libc::sigprocmask(
                libc::SIG_BLOCK,
                &set,
                std::ptr::null_mut(),
            ))?;
            let child = libc::fork();
            if child < 0 {
                return Err(std::io::Error::last_os_error());
            }
            if child > 0 {
                supervise(child, &set);
            }
            check(libc::sigprocmask(
                libc::SIG_UNBLOCK,
                &set,
                std::ptr::null_mut(),
            ))?;
            check(libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0))?;
        }
        for &(resource, value) in &plan.limits {
            check(libc::setrlimit(
                resource,
                &libc::rlimit {
                    rlim_cur: value,
                    rlim_max: value,
                },
            ))?;
        }
        if let Some(uid) = plan.uid {
            check(libc::setgroups(0, std::ptr::null()))?;
            check(libc::setgid(uid))?;
            check(libc::setuid(uid))?;
            // Changing credentials clears the parent-death signal.
            check(libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0))?;
        }
        check(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))?;
    }
    Ok(())
}

/// The supervising process of a PID-namespace run: closes every inherited descriptor beyond
/// stdio (so the harness is not kept waiting on them), waits for the namespace's init (killing it
/// when SIGTERM arrives), and ends the same way it did. Never returns.
///
/// # Safety
/// Only to be called in a forked child, with `child` its own child and `set` (SIGTERM and
/// SIGCHLD) blocked.
unsafe fn supervise(child: libc::pid_t, set: &libc::sigset_t) -> ! {
    // SAFETY: close_range/close only close this process's descriptors.
    unsafe {
        if libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) != 0 {
            for fd in 3..1024 {
                libc::close(fd);
            }
        }
    }
    let mut status: libc::c_int = 0;
    loop {
        // SAFETY: waitpid on our own child with a valid status pointer.
        let r = unsafe { libc::waitpid(child, &mut status, libc::WNOHANG) };
        if r == child {
            break;
        }
        if r < 0 && std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            // SAFETY: _exit ends this process without running anything else.
            unsafe { libc::_exit(127) }
        }
        let timeout = libc::timespec {
            tv_sec: 1,
            tv_nsec: 0,
        };
        // SAFETY: sigtimedwait with a valid set and timeout; kill targets our own child.
        unsafe {
            if libc::sigtimedwait(set, std::ptr::null_mut(), &timeout) == libc::SIGTERM {
                libc::kill(child, libc::SIGKILL);
            }
        }
    }
    // SAFETY: signal/kill/_exit on this process only.
    unsafe {
        if libc::WIFEXITED(status) {
            libc::_exit(libc::WEXITSTATUS(status));
        }
        if libc::WIFSIGNALED(status) {
            let sig = libc::WTERMSIG(status);
            libc::signal(sig, libc::SIG_DFL);
            libc::kill(libc::getpid(), sig);
            libc::_exit(128 + sig);
        }
        libc::_exit(127)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_paths_are_unescaped() {
        assert_eq!(unescape_mount_path(r"/mnt/a\040b"), b"/mnt/a b");
        assert_eq!(unescape_mount_path(r"/x\\y"), br"/x\\y");
        assert_eq!(unescape_mount_path(r"/end\04"), br"/end\04");
    }
}
