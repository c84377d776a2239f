//! Email notifications through lettre against a real SMTP server
//! (aiosmtpd with a throwaway certificate): STARTTLS with AUTH, implicit
//! TLS with AUTH, and a wrong password reported as one clear line.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use super::{http, wait_for, Server};
use crate::util::{free_port, Env};

struct TlsSmtp {
    child: Child,
    port: u16,
}

impl TlsSmtp {
    fn start(env: &Env, mode: &str, password: &str) -> TlsSmtp {
        let port = free_port();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/smtp_tls.py");
        let mut child = Command::new("/usr/bin/python3")
            .arg(script)
            .args([mode, &port.to_string()])
            .arg(env.path("smtp.crt"))
            .arg(env.path("smtp.key"))
            .args(["alerts@example.org", password])
            .arg(env.path(&format!("{mode}.out")))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3-aiosmtpd (scripts/test.sh installs it)");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready", "smtp_tls.py {mode} did not start");
        TlsSmtp { child, port }
    }
}

impl Drop for TlsSmtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A CA and a certificate for 127.0.0.1 signed by it.
fn certificates(env: &Env) {
    let o = Command::new("sh")
        .arg("-ec")
        .arg(
            "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
               -keyout ca.key -out ca.crt -subj '/CN=strata test SMTP CA' -days 2 2>/dev/null
             openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
               -keyout smtp.key -out smtp.csr -subj '/CN=127.0.0.1' 2>/dev/null
             printf 'subjectAltName=IP:127.0.0.1\n' > san.ext
             openssl x509 -req -in smtp.csr -CA ca.crt -CAkey ca.key -CAcreateserial \
               -out smtp.crt -days 2 -extfile san.ext 2>/dev/null",
        )
        .current_dir(env.path(""))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn email_over_starttls_and_implicit_tls_with_auth() {
    let env = Env::new("mon-mail");
    certificates(&env);
    let starttls = TlsSmtp::start(&env, "starttls", "s3cret-pw");
    let implicit = TlsSmtp::start(&env, "tls", "s3cret-pw");
    std::fs::write(env.path("smtp.pw"), "s3cret-pw\n").unwrap();
    std::fs::write(env.path("wrong.pw"), "not-the-password\n").unwrap();
    let uuid = "8f1b2c3d-0000-4000-8000-000000000001";
    let checks = super::write_checks(
        &env,
        &format!(
            "[[check]]\nname = \"mail test\"\nhost = \"hermes\"\njob = \"nightly\"\nuuid = \"{uuid}\"\n\n\
[[channel]]\nname = \"starttls\"\ntype = \"email\"\nsmtp = \"127.0.0.1:{}\"\ntls = \"starttls\"\nfrom = \"strata@example.org\"\nto = [\"ops@example.org\"]\nusername = \"alerts@example.org\"\npassword_file = \"{}\"\n\n\
[[channel]]\nname = \"smtps\"\ntype = \"email\"\nsmtp = \"127.0.0.1:{}\"\ntls = \"tls\"\nfrom = \"strata@example.org\"\nto = [\"oncall@example.org\"]\nusername = \"alerts@example.org\"\npassword_env = \"STRATA_TEST_SMTP_PASSWORD\"\n\n\
[[channel]]\nname = \"wrong\"\ntype = \"email\"\nsmtp = \"127.0.0.1:{}\"\ntls = \"starttls\"\nfrom = \"strata@example.org\"\nto = [\"ops@example.org\"]\nusername = \"alerts@example.org\"\npassword_file = \"{}\"\n",
            starttls.port,
            env.path("smtp.pw").display(),
            implicit.port,
            starttls.port,
            env.path("wrong.pw").display(),
        ),
    );
    let s = Server::start_with_env(
        free_port(),
        &checks,
        &format!("sqlite://{}", env.path("m.db").display()),
        &[
            ("SSL_CERT_FILE", env.path("ca.crt").to_str().unwrap()),
            ("STRATA_TEST_SMTP_PASSWORD", "s3cret-pw"),
        ],
    );
    let url = format!("{}/ping/{uuid}/fail", s.base);
    assert_eq!(http("GET", &url, None, &[]).0, 200);
    let read = |name: &str| std::fs::read_to_string(env.path(name)).unwrap_or_default();
    wait_for("mail over STARTTLS", 20, &|| {
        read("starttls.out").contains("Subject:")
    });
    wait_for("mail over implicit TLS", 20, &|| {
        read("tls.out").contains("Subject:")
    });
    for (file, to) in [
        ("starttls.out", "ops@example.org"),
        ("tls.out", "oncall@example.org"),
    ] {
        let m = read(file);
        assert!(
            m.starts_with(&format!("== auth=True tls=True to={to}\n")),
            "{file}: {m}"
        );
        assert!(
            m.contains("Subject: hermes/nightly is DOWN: the last run failed"),
            "{m}"
        );
        assert!(m.contains("From: strata@example.org"), "{m}");
    }
    // the wrong password: one line in the notification log, no delivery
    wait_for("the refused login in the log", 20, &|| {
        super::notification_log(&env.path("m.db"))
            .iter()
            .any(|l| l.starts_with("wrong|0|"))
    });
    let lines: Vec<String> = super::notification_log(&env.path("m.db"))
        .into_iter()
        .filter(|l| l.starts_with("wrong|"))
        .collect();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].contains("refused the login of \"alerts@example.org\"")
            && lines[0].contains("535")
            && lines[0].contains("password_file"),
        "{}",
        lines[0]
    );
    assert!(!lines[0].contains("not-the-password"), "{}", lines[0]);
    eprintln!("notification log: {}", lines[0]);
    assert_eq!(
        read("starttls.out").matches("== ").count(),
        1,
        "only the right login delivered"
    );
    // without the CA the certificate is refused (no silent downgrade)
    drop(s);
    let s = Server::start_with_env(
        free_port(),
        &checks,
        &format!("sqlite://{}", env.path("m2.db").display()),
        &[
            ("SSL_CERT_FILE", "/dev/null"),
            ("SSL_CERT_DIR", "/nonexistent"),
            ("STRATA_TEST_SMTP_PASSWORD", "s3cret-pw"),
        ],
    );
    let url = format!("{}/ping/{uuid}/fail", s.base);
    assert_eq!(http("GET", &url, None, &[]).0, 200);
    let log = |db: &str| super::notification_log(&env.path(db)).join("\n");
    wait_for("untrusted certificate refused", 20, &|| {
        log("m2.db").contains("smtps|0|")
    });
    assert!(log("m2.db").contains("certificate"), "{}", log("m2.db"));
    eprintln!("notification log: {}", log("m2.db").trim());
    assert_eq!(read("tls.out").matches("== ").count(), 1);
}
