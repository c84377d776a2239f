//! The full-host drill: a small Debian root filesystem (mmdebstrap's, the
//! openzfs lane's image tree) with one service of its own, backed up by
//! strata, restored into a new disk image and booted with its own kernel in
//! a throwaway VM; the drill passes when the service answers on a forwarded
//! port, and fails, naming the probe, when the service's unit is missing.

use crate::snapshot::must;
use crate::util::*;

fn write_plan(env: &Env, host: &std::path::Path, timeout: &str) -> String {
    let plan = env.path("strata.toml");
    std::fs::write(
        &plan,
        format!(
            "host = \"web1\"\nstate_dir = \"{state}\"\n[repository.local]\nurl = \"{repo}\"\npassword_env = \"STRATA_PASSWORD\"\n\n\
             [[job]]\nname = \"host\"\n\
             [[job.step]]\nkind = \"backup\"\npaths = [\"{host}\"]\n\
             [[job.drill.probe]]\nkind = \"boot\"\nroot = \"{host}\"\nssh = true\nhttp = [8080]\ntimeout = \"{timeout}\"\n",
            state = env.path("state").display(),
            repo = env.repo.display(),
            host = host.display(),
        ),
    )
    .unwrap();
    plan.to_str().unwrap().to_string()
}

fn drill(env: &Env, cfg: &str) -> (Option<i32>, serde_json::Value) {
    let o = env
        .cmd()
        .args(["drill", "host", "--json", "--config", cfg])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|_| {
        panic!(
            "drill output: {}\n{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    });
    (o.status.code(), v)
}

fn check<'a>(r: &'a serde_json::Value, list: &str, prefix: &str) -> &'a serde_json::Value {
    r[list]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"].as_str().unwrap().starts_with(prefix))
        .unwrap_or_else(|| panic!("no {prefix} in {list}: {r}"))
}

/// QEMU processes started by this test's drills (their scratch is ours).
fn our_vms(env: &Env) -> usize {
    let o = must("ps", &["-eo", "args"]);
    let marker = env.path("state").display().to_string();
    o.lines()
        .filter(|l| l.starts_with("qemu-system") && l.contains(&marker))
        .count()
}

#[test]
fn full_host_drill_boots_the_restored_root() {
    let env = Env::new("plan-fullhost");
    let img = crate::openzfs::image();
    let host = env.path("hostroot");
    std::fs::create_dir_all(&host).unwrap();
    must(
        "tar",
        &[
            "-C",
            host.to_str().unwrap(),
            "--numeric-owner",
            "-xpf",
            img.join("root.tar").to_str().unwrap(),
        ],
    );
    // the host's one service: a static HTTP server as a systemd unit
    std::fs::create_dir_all(host.join("srv/www")).unwrap();
    std::fs::write(host.join("srv/www/index.html"), "web1 is up\n").unwrap();
    let unit = host.join("etc/systemd/system/demo-http.service");
    std::fs::write(
        &unit,
        "[Unit]\nDescription=the host's web server\nAfter=network.target\n\n\
         [Service]\nExecStart=/bin/busybox httpd -f -p 8080 -h /srv/www\n\n\
         [Install]\nWantedBy=multi-user.target\n",
    )
    .unwrap();
    let wants = host.join("etc/systemd/system/multi-user.target.wants");
    std::fs::create_dir_all(&wants).unwrap();
    std::os::unix::fs::symlink(
        "/etc/systemd/system/demo-http.service",
        wants.join("demo-http.service"),
    )
    .unwrap();

    let cfg = write_plan(&env, &host, "5m");
    env.init();
    env.ok(&["run", "host", "--quiet", "--config", &cfg]);
    let (code, r) = drill(&env, &cfg);
    let boot = check(&r, "checks", "probe: boot");
    eprintln!(
        "full-host drill: {} — phases {}",
        boot["message"], r["phases"]
    );
    assert_eq!(r["verdict"], "pass", "{r}");
    assert_eq!(code, Some(0));
    let msg = boot["message"].as_str().unwrap();
    assert!(msg.contains("HTTP on port 8080 answered 200"), "{msg}");
    assert!(msg.contains("ssh answered"), "{msg}");
    assert_eq!(
        check(&r, "controls", "control: probe: boot")["verdict"],
        "pass",
        "{r}"
    );
    assert!(r["phases"]["boot"].as_f64().unwrap() > 1.0, "{r}");
    assert_eq!(our_vms(&env), 0, "the VM is gone after the drill");
    // the HTML report, here and in the repository's drill record
    let page = std::fs::read_to_string(r["report_html"].as_str().unwrap()).unwrap();
    assert!(
        page.contains("<span class=\"v pass\" id=verdict>pass</span>"),
        "{page}"
    );
    assert!(page.contains("<tr class=pass><td>probe: boot "), "{page}");
    assert!(page.contains("<tr class=pass><td>control: probe: boot "));
    assert!(page.contains("qemu-system-x86_64"), "the console is in it");
    let rec = r["record"].as_str().expect("a drill record");
    let shown = env.ok(&[
        "drill",
        "show",
        "host",
        &rec[..10],
        "--html",
        "--config",
        &cfg,
    ]);
    assert_eq!(shown, page);

    // kill -9 of the drill while the VM boots: the VM dies with it, and
    // the next drill runs clean.
    let mut child = env
        .cmd()
        .args(["drill", "host", "--quiet", "--config", &cfg])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let t = std::time::Instant::now();
    while our_vms(&env) == 0 {
        assert!(
            t.elapsed() < std::time::Duration::from_secs(300),
            "the drill never started its VM"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    std::thread::sleep(std::time::Duration::from_secs(3));
    child.kill().unwrap();
    child.wait().unwrap();
    let t = std::time::Instant::now();
    while our_vms(&env) > 0 {
        assert!(
            t.elapsed() < std::time::Duration::from_secs(15),
            "the VM outlived the killed drill"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let (_, r) = drill(&env, &cfg);
    assert_eq!(r["verdict"], "pass", "the drill after the kill: {r}");
    assert_eq!(our_vms(&env), 0);

    // The unit is missing from the next backup: the drill fails, naming
    // the probe and the port that stayed silent.
    std::fs::remove_file(wants.join("demo-http.service")).unwrap();
    std::fs::remove_file(&unit).unwrap();
    let cfg = write_plan(&env, &host, "150s");
    env.ok(&["run", "host", "--quiet", "--config", &cfg]);
    let (code, r) = drill(&env, &cfg);
    assert_eq!(r["verdict"], "fail", "{r}");
    assert_ne!(code, Some(0));
    let boot = check(&r, "checks", "probe: boot");
    eprintln!("without the unit: {}", boot["message"]);
    assert_eq!(boot["verdict"], "fail");
    let msg = boot["message"].as_str().unwrap();
    assert!(msg.contains("8080"), "{msg}");
    assert_eq!(our_vms(&env), 0, "the VM is gone after the failed drill");
    assert!(
        !env.path("state/drills/scratch").exists()
            || std::fs::read_dir(env.path("state/drills/scratch"))
                .unwrap()
                .next()
                .is_none(),
        "no scratch left"
    );
}
