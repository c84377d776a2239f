//! Throwaway virtual machines under QEMU.
//!
//! A [`Vm`] boots a kernel (and initramfs) with a root disk image that is
//! never written (QEMU's `snapshot=on`: writes go to a temporary overlay),
//! extra raw disks, and QEMU user-mode networking with `restrict=on`: the
//! guest has no route anywhere; the only way in is a forward from a free
//! port on the host's loopback to a guest TCP port. The console (the
//! guest's serial port) is written to a file in the work directory.
//!
//! Every wait is bounded and fails with the console's last lines; a VM is
//! killed (its whole process group) when dropped, and QEMU is started with
//! the kernel's parent-death signal, so it never outlives the process that
//! booted it. [`Ssh`] runs commands in a guest and copies files in and out.
//!
//! Software emulation (TCG) is the default: on the machines this was built
//! on, `/dev/kvm` exists but hangs. `STRATA_VM_ACCEL=kvm` opts in to KVM.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// What can go wrong with a VM.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot start {program}: {source} (install it: apt-get install qemu-system-x86)")]
    Spawn {
        program: String,
        source: std::io::Error,
    },
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("the VM stopped ({status}) before {what}; its console's last lines:\n{tail}")]
    Exited {
        what: String,
        status: String,
        tail: String,
    },
    #[error("{what} did not happen within {secs} s; the console's last lines:\n{tail}")]
    Timeout {
        what: String,
        secs: u64,
        tail: String,
    },
    #[error("in the VM, `{command}` failed ({status}): {stderr}")]
    Command {
        command: String,
        status: String,
        stderr: String,
    },
}

pub type Result<T> = std::result::Result<T, Error>;

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let what = what.into();
    move |source| Error::Io { what, source }
}

/// Which accelerator QEMU uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accel {
    /// Software emulation (always works; a Debian kernel boots in ~30 s).
    Tcg,
    /// Hardware virtualisation through /dev/kvm.
    Kvm,
}

impl Accel {
    /// `STRATA_VM_ACCEL=kvm` selects KVM; anything else TCG.
    pub fn from_env() -> Accel {
        match std::env::var("STRATA_VM_ACCEL").as_deref() {
            Ok("kvm") => Accel::Kvm,
            _ => Accel::Tcg,
        }
    }
}

/// What to boot.
#[derive(Clone, Debug)]
pub struct Spec {
    pub kernel: PathBuf,
    pub initrd: Option<PathBuf>,
    /// The root disk (`/dev/vda`, raw); booted with `snapshot=on`, never
    /// written.
    pub root: PathBuf,
    /// Further raw disks, `/dev/vdb` onwards; these are written.
    pub disks: Vec<PathBuf>,
    /// Guest TCP ports reachable from the host's loopback.
    pub forward: Vec<u16>,
    pub memory_mib: u32,
    pub cpus: u32,
    /// Appended to `root=/dev/vda rw console=ttyS0 panic=1`.
    pub cmdline: String,
    /// Where the console log goes.
    pub work: PathBuf,
    pub accel: Accel,
    /// The QEMU binary (default `qemu-system-x86_64`).
    pub qemu: String,
}

impl Spec {
    pub fn new(kernel: &Path, initrd: Option<&Path>, root: &Path, work: &Path) -> Spec {
        Spec {
            kernel: kernel.to_path_buf(),
            initrd: initrd.map(Path::to_path_buf),
            root: root.to_path_buf(),
            disks: Vec::new(),
            forward: vec![22],
            memory_mib: 1024,
            cpus: 2,
            cmdline: String::new(),
            work: work.to_path_buf(),
            accel: Accel::from_env(),
            qemu: "qemu-system-x86_64".into(),
        }
    }

    /// The QEMU argument vector for this spec with these host ports (one
    /// per `forward` entry).
    pub fn argv(&self, host_ports: &[u16]) -> Vec<String> {
        let mut a: Vec<String> = vec![self.qemu.clone()];
        let mut push = |xs: &[&str]| a.extend(xs.iter().map(|s| s.to_string()));
        match self.accel {
            Accel::Tcg => push(&["-accel", "tcg,thread=multi", "-cpu", "max"]),
            Accel::Kvm => push(&["-accel", "kvm", "-cpu", "host"]),
        }
        push(&[
            "-display",
            "none",
            "-vga",
            "none",
            "-monitor",
            "none",
            "-parallel",
            "none",
            "-no-reboot",
            "-device",
            "virtio-rng-pci",
        ]);
        a.extend(["-m".into(), self.memory_mib.to_string()]);
        a.extend(["-smp".into(), self.cpus.to_string()]);
        a.extend([
            "-serial".into(),
            format!("file:{}", self.work.join("console.log").display()),
        ]);
        a.extend(["-kernel".into(), self.kernel.display().to_string()]);
        if let Some(i) = &self.initrd {
            a.extend(["-initrd".into(), i.display().to_string()]);
        }
        let mut append = "root=/dev/vda rw console=ttyS0 panic=1".to_string();
        if !self.cmdline.is_empty() {
            append.push(' ');
            append.push_str(&self.cmdline);
        }
        a.extend(["-append".into(), append]);
        a.extend([
            "-drive".into(),
            format!(
                "file={},format=raw,if=virtio,snapshot=on",
                qemu_path(&self.root)
            ),
        ]);
        for d in &self.disks {
            a.extend([
                "-drive".into(),
                format!("file={},format=raw,if=virtio", qemu_path(d)),
            ]);
        }
        let mut net = "user,id=n0,restrict=on".to_string();
        for (g, h) in self.forward.iter().zip(host_ports) {
            net.push_str(&format!(",hostfwd=tcp:127.0.0.1:{h}-:{g}"));
        }
        a.extend(["-netdev".into(), net]);
        a.extend(["-device".into(), "virtio-net-pci,netdev=n0".into()]);
        a
    }
}

/// QEMU's option syntax splits on commas: a comma in a path is doubled.
fn qemu_path(p: &Path) -> String {
    p.display().to_string().replace(',', ",,")
}

fn free_port() -> Result<u16> {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(io("bind a loopback port"))?;
    Ok(l.local_addr().map_err(io("bind a loopback port"))?.port())
}

/// How a caller starts the QEMU process (the drill records it as one of its
/// process groups); [`spawn_default`] when nothing is recorded.
pub type Spawner<'a> = &'a mut dyn FnMut(&mut Command) -> std::io::Result<Child>;

/// Makes `c` the leader of its own process group, killed by the kernel if
/// the process that starts it dies (Linux).
pub fn contain(c: &mut Command) {
    use std::os::unix::process::CommandExt;
    c.process_group(0);
    #[cfg(target_os = "linux")]
    // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        c.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
}

/// [`contain`], then spawn.
pub fn spawn_default(c: &mut Command) -> std::io::Result<Child> {
    contain(c);
    c.spawn()
}

/// A running VM; killed when dropped.
pub struct Vm {
    child: Option<Child>,
    ports: Vec<(u16, u16)>,
    console: PathBuf,
    started: Instant,
}

impl Vm {
    /// Boots `spec`. Returns once QEMU runs (not once the guest is up: wait
    /// for that with [`Vm::wait_banner`], [`Vm::wait_http`] or
    /// [`Vm::wait_console`]).
    pub fn boot(spec: &Spec, spawn: Spawner) -> Result<Vm> {
        std::fs::create_dir_all(&spec.work).map_err(io(format!(
            "create the VM's work directory {}",
            spec.work.display()
        )))?;
        // A port picked free may be taken before QEMU binds it: try again.
        let mut last = None;
        for _ in 0..3 {
            let ports: Vec<u16> = spec
                .forward
                .iter()
                .map(|_| free_port())
                .collect::<Result<_>>()?;
            let argv = spec.argv(&ports);
            let errlog = spec.work.join("qemu.stderr");
            let stderr = std::fs::File::create(&errlog).map_err(io("create qemu.stderr"))?;
            let mut c = Command::new(&argv[0]);
            c.args(&argv[1..])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(stderr);
            let mut child = spawn(&mut c).map_err(|source| Error::Spawn {
                program: argv[0].clone(),
                source,
            })?;
            // QEMU fails fast on a bad option or a taken port.
            std::thread::sleep(Duration::from_millis(300));
            if let Ok(Some(status)) = child.try_wait() {
                let err = std::fs::read_to_string(&errlog).unwrap_or_default();
                last = Some(Error::Exited {
                    what: "it booted".into(),
                    status: status.to_string(),
                    tail: err.trim().to_string(),
                });
                if err.contains("host forwarding") {
                    continue;
                }
                break;
            }
            return Ok(Vm {
                child: Some(child),
                ports: spec.forward.iter().copied().zip(ports).collect(),
                console: spec.work.join("console.log"),
                started: Instant::now(),
            });
        }
        Err(last.expect("a failed attempt"))
    }

    /// The QEMU process's id (also its process group).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// Time since QEMU started.
    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// The host loopback port forwarded to `guest` port.
    pub fn port(&self, guest: u16) -> u16 {
        self.ports
            .iter()
            .find(|(g, _)| *g == guest)
            .map(|(_, h)| *h)
            .unwrap_or_else(|| panic!("guest port {guest} is not forwarded"))
    }

    /// The console so far.
    pub fn console(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.console).unwrap_or_default()).into_owned()
    }

    /// The console's last `n` lines.
    pub fn console_tail(&self, n: usize) -> String {
        let c = self.console();
        let lines: Vec<&str> = c.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    fn alive(&mut self, what: &str) -> Result<()> {
        if let Some(c) = self.child.as_mut() {
            if let Ok(Some(status)) = c.try_wait() {
                return Err(Error::Exited {
                    what: what.to_string(),
                    status: status.to_string(),
                    tail: self.console_tail(30),
                });
            }
        }
        Ok(())
    }

    fn wait_for<T>(
        &mut self,
        what: &str,
        timeout: Duration,
        mut probe: impl FnMut(&Vm) -> Option<T>,
    ) -> Result<T> {
        let end = Instant::now() + timeout;
        loop {
            self.alive(what)?;
            if let Some(t) = probe(self) {
                return Ok(t);
            }
            if Instant::now() >= end {
                return Err(Error::Timeout {
                    what: what.to_string(),
                    secs: timeout.as_secs(),
                    tail: self.console_tail(30),
                });
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Waits until a service on guest port `guest` greets with `prefix`
    /// (sshd: `SSH-2.0`). QEMU accepts on the host port before the guest
    /// listens, so a connection alone proves nothing.
    pub fn wait_banner(&mut self, guest: u16, prefix: &[u8], timeout: Duration) -> Result<()> {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port(guest)));
        let what = format!(
            "guest port {guest} answering {}",
            String::from_utf8_lossy(prefix)
        );
        self.wait_for(&what, timeout, |_| {
            let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
            s.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
            let mut buf = vec![0u8; prefix.len()];
            s.read_exact(&mut buf).ok()?;
            (buf == prefix).then_some(())
        })
    }

    /// Waits until an HTTP server on guest port `guest` answers `GET path`;
    /// returns the status code.
    pub fn wait_http(&mut self, guest: u16, path: &str, timeout: Duration) -> Result<u16> {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port(guest)));
        let what = format!("an HTTP answer to GET {path} on guest port {guest}");
        self.wait_for(&what, timeout, |_| http_get(&addr, path).map(|(s, _)| s))
    }

    /// Waits until the console shows `marker`.
    pub fn wait_console(&mut self, marker: &str, timeout: Duration) -> Result<()> {
        let what = format!("`{marker}` on the console");
        self.wait_for(&what, timeout, |vm| {
            vm.console().contains(marker).then_some(())
        })
    }

    /// Kills QEMU (its process group) and waits for it.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: signalling our own child's process group.
            unsafe { libc::kill(-(c.id() as i32), libc::SIGKILL) };
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One `GET path` over HTTP/1.0: the status code and the body.
pub fn http_get(addr: &SocketAddr, path: &str) -> Option<(u16, Vec<u8>)> {
    let mut s = TcpStream::connect_timeout(addr, Duration::from_secs(1)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes())
        .ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).ok()?;
    let head_end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&buf[..head_end]).ok()?;
    let status = head
        .strip_prefix("HTTP/")?
        .split(' ')
        .nth(1)?
        .parse()
        .ok()?;
    Some((status, buf[head_end + 4..].to_vec()))
}

/// Commands in a guest over ssh (key login, no host-key checks: the guest
/// is a throwaway reached only through loopback).
#[derive(Clone, Debug)]
pub struct Ssh {
    pub port: u16,
    pub key: PathBuf,
    pub user: String,
}

impl Ssh {
    pub fn new(port: u16, key: &Path, user: &str) -> Ssh {
        Ssh {
            port,
            key: key.to_path_buf(),
            user: user.to_string(),
        }
    }

    /// The ssh argument vector up to (not including) the remote command.
    pub fn argv(&self) -> Vec<String> {
        [
            "ssh",
            "-p",
            &self.port.to_string(),
            "-i",
            &self.key.display().to_string(),
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "LogLevel=ERROR",
            "-o",
            "ConnectTimeout=10",
            &format!("{}@127.0.0.1", self.user),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }

    fn command(&self, script: &str) -> Command {
        let argv = self.argv();
        let mut c = Command::new(&argv[0]);
        c.args(&argv[1..]).arg(script);
        c
    }

    /// Runs `script` with the guest user's shell; returns its output whatever
    /// its exit status.
    pub fn run(&self, script: &str) -> Result<Output> {
        self.command(script)
            .stdin(Stdio::null())
            .output()
            .map_err(io("run ssh"))
    }

    /// Runs `script`; its stdout, or an error with its stderr if it failed.
    pub fn ok(&self, script: &str) -> Result<String> {
        let out = self.run(script)?;
        if !out.status.success() {
            return Err(Error::Command {
                command: script.to_string(),
                status: out.status.to_string(),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Waits until a login works (sshd may greet before it accepts keys).
    pub fn wait(&self, vm: &mut Vm, timeout: Duration) -> Result<()> {
        let end = Instant::now() + timeout;
        vm.wait_banner(22, b"SSH-2.0", timeout)?;
        vm.wait_for(
            "an ssh login",
            end.saturating_duration_since(Instant::now()),
            |_| {
                self.run("true")
                    .ok()
                    .filter(|o| o.status.success())
                    .map(|_| ())
            },
        )
    }

    /// Writes `bytes` to `remote` in the guest with file mode `mode`.
    pub fn put(&self, bytes: &[u8], remote: &str, mode: u32) -> Result<()> {
        let q = shell_quote(remote);
        let script = format!("cat > {q}.part && chmod {mode:o} {q}.part && mv {q}.part {q}");
        let mut child = self
            .command(&script)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(io("run ssh"))?;
        let mut stdin = child.stdin.take().expect("piped");
        let written = stdin.write_all(bytes);
        drop(stdin);
        let out = child.wait_with_output().map_err(io("run ssh"))?;
        if !out.status.success() || written.is_err() {
            return Err(Error::Command {
                command: script,
                status: out.status.to_string(),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        Ok(())
    }
}

/// One word for a POSIX shell.
pub fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-=:@%+,".contains(&b))
    {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argv_forwards_only_loopback_and_never_writes_the_root() {
        let s = Spec::new(
            Path::new("/k"),
            Some(Path::new("/i")),
            Path::new("/img,1"),
            Path::new("/w"),
        );
        let a = s.argv(&[4022]).join(" ");
        assert!(a.contains("user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:4022-:22"));
        assert!(a.contains("file=/img,,1,format=raw,if=virtio,snapshot=on"));
        assert!(a.contains("-serial file:/w/console.log"));
        assert!(a.contains("-no-reboot"));
    }

    #[test]
    fn quoting_survives_the_remote_shell() {
        assert_eq!(shell_quote("/tmp/a-b.c"), "/tmp/a-b.c");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("a b"), "'a b'");
    }
}
