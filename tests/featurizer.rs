//! End-to-end tests of the featurizer binary: resume after a kill, shards, bad images.
//! The network is the real ResNet50 with seeded random weights; the images are synthetic.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use contracts::dataset::dataset_parts;
use contracts::tables::{Features, FeaturesTable, read};
use imagecaptioning::{bin, describe, files_under, run, run_ok, tempdir};

/// Makes `n` synthetic images and their captions.parquet under `dir`.
fn prepare(dir: &Path, n: usize) {
    run_ok(
        "synth",
        dir,
        &[
            "--out",
            "synthetic",
            "--images",
            &n.to_string(),
            "--seed",
            "5",
            "--set",
            "synth.image_size=96",
        ],
    );
    run_ok(
        "cleaner",
        dir,
        &["--dataset-dir", "synthetic", "--work-dir", "work"],
    );
}

const FEATURIZE: [&str; 8] = [
    "--work-dir",
    "work",
    "--weights",
    "random",
    "--set",
    "featurizer.part_rows=3",
    "--batch-size",
    "3",
];

/// All features of a work dir, keyed by image name, in name order.
fn all_features(dir: &Path) -> Vec<(String, Vec<f32>)> {
    let mut rows = Vec::new();
    for part in dataset_parts(&dir.join("work/features")).unwrap() {
        let (features, _): (Features, _) = read::<FeaturesTable>(&part).unwrap();
        for (i, image) in features.images.iter().enumerate() {
            rows.push((image.clone(), features.row(i).to_vec()));
        }
    }
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    rows
}

fn assert_same_features(a: &[(String, Vec<f32>)], b: &[(String, Vec<f32>)]) {
    assert_eq!(a.len(), b.len());
    for ((name_a, fa), (name_b, fb)) in a.iter().zip(b) {
        assert_eq!(name_a, name_b);
        let worst = fa
            .iter()
            .zip(fb)
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max);
        assert!(worst <= 1e-5, "{name_a}: features differ by {worst}");
    }
}

#[test]
fn a_killed_run_resumes_to_the_same_features_as_a_clean_run() {
    let clean = tempdir();
    prepare(clean.path(), 9);
    run_ok("featurizer", clean.path(), &FEATURIZE);
    let expected = all_features(clean.path());
    assert_eq!(expected.len(), 9);
    assert!(clean.path().join("work/features/_SUCCESS").is_file());

    let killed = tempdir();
    prepare(killed.path(), 9);
    let mut child = Command::new(bin("featurizer"))
        .args(FEATURIZE)
        .current_dir(killed.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let first_part = killed.path().join("work/features/part-00000.parquet");
    let deadline = Instant::now() + Duration::from_secs(120);
    while !first_part.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL: no cleanup runs
    child.wait().unwrap();
    assert!(first_part.exists(), "the first part was never written");
    assert!(
        !killed.path().join("work/features/_SUCCESS").exists(),
        "killed before the end"
    );

    let out = run_ok("featurizer", killed.path(), &FEATURIZE);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("reused from an earlier run"), "{stdout}");
    assert_same_features(&all_features(killed.path()), &expected);
    let left = files_under(&killed.path().join("work/features"));
    assert!(
        left.iter()
            .all(|f| f == "_SUCCESS" || f.starts_with("part-")),
        "{left:?}"
    );
}

#[test]
fn two_shards_make_the_whole_set() {
    let whole = tempdir();
    prepare(whole.path(), 8);
    run_ok("featurizer", whole.path(), &FEATURIZE);

    let sharded = tempdir();
    prepare(sharded.path(), 8);
    let with_shard = |k: &'static str| [FEATURIZE.as_slice(), &["--shard", k]].concat();
    let out = run_ok("featurizer", sharded.path(), &with_shard("1/2"));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("1 still missing"),
        "{}",
        describe(&out)
    );
    assert!(!sharded.path().join("work/features/_SUCCESS").exists());
    run_ok("featurizer", sharded.path(), &with_shard("2/2"));
    assert!(sharded.path().join("work/features/_SUCCESS").is_file());
    assert_same_features(&all_features(sharded.path()), &all_features(whole.path()));
}

#[test]
fn other_settings_are_refused_on_resume() {
    let dir = tempdir();
    prepare(dir.path(), 3);
    run_ok("featurizer", dir.path(), &FEATURIZE);
    let out = run(
        "featurizer",
        dir.path(),
        &[FEATURIZE.as_slice(), &["--set", "featurizer.resize=232"]].concat(),
    );
    assert!(!out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "error: featurizing: work/features/part-00000.parquet was made with other settings \
         (weights, preprocessing or image list) than this run; delete the features directory or \
         rerun with --force to recompute it\n",
        "{}",
        describe(&out)
    );
}

#[test]
fn bad_images_are_named_skipped_and_counted_and_the_rest_featurized() {
    let dir = tempdir();
    let images = dir.path().join("photos");
    std::fs::create_dir_all(&images).unwrap();
    run_ok(
        "synth",
        dir.path(),
        &[
            "--out",
            "synthetic",
            "--images",
            "3",
            "--set",
            "synth.image_size=64",
        ],
    );
    let good = std::fs::read(dir.path().join("synthetic/Images/synth_00000.png")).unwrap();
    std::fs::write(images.join("good1.png"), &good).unwrap();
    std::fs::write(images.join("good2.png"), &good).unwrap();
    std::fs::write(images.join("truncated.png"), &good[..good.len() / 2]).unwrap();
    std::fs::write(images.join("empty.jpg"), b"").unwrap();
    std::fs::write(images.join("notes.jpg"), b"this is not a picture").unwrap();

    let out = run(
        "featurizer",
        dir.path(),
        &[
            "--images",
            "photos",
            "--work-dir",
            "work",
            "--weights",
            "random",
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(3),
        "exit code 3 means some images were skipped\n{}",
        describe(&out)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.lines().collect::<Vec<_>>(),
        [
            " WARN using RANDOM ResNet50 weights (seed 0): features carry no ImageNet knowledge; \
             fine for the offline demo, not for real results (run `make weights`)",
            " WARN skipped empty.jpg: The image format could not be determined",
            " WARN skipped notes.jpg: The image format could not be determined",
            " WARN skipped truncated.png: unexpected end of file",
            "skipped image empty.jpg: The image format could not be determined",
            "skipped image notes.jpg: The image format could not be determined",
            "skipped image truncated.png: unexpected end of file",
        ],
        "each bad image is named"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("skipped     3 unreadable images"));
    let names: Vec<String> = all_features(dir.path())
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(names, ["good1.png", "good2.png"]);
}

/// `make test` builds the binaries without the `cuda` feature.
#[test]
fn cuda_on_a_cpu_build_says_how_to_rebuild() {
    let dir = tempdir();
    prepare(dir.path(), 1);
    let out = run(
        "featurizer",
        dir.path(),
        &[FEATURIZE.as_slice(), &["--device", "cuda"]].concat(),
    );
    assert!(!out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "error: device \"cuda\" needs a CUDA build: rebuild with `cargo build --release \
         --features cuda` (`make FEATURES=cuda ...`), or use device = \"cpu\"\n",
        "{}",
        describe(&out)
    );
}

/// A one-node Slurm cluster (slurmctld and slurmd on this machine) in a temp dir, with munged
/// started if none answers; every daemon it started is stopped when it drops. `None`, with the
/// reason printed, where Slurm is not installed or this is not root (slurmd needs it).
struct Cluster {
    dir: tempfile::TempDir,
    started: Vec<u32>,
}

impl Cluster {
    const SETUP: &str = "apt-get install slurm-wlm munge";

    fn start() -> Option<Self> {
        let missing: Vec<&str> = ["slurmctld", "slurmd", "sbatch", "squeue", "munged", "munge"]
            .into_iter()
            .filter(|tool| {
                !succeeds(&format!(
                    "command -v {tool} >/dev/null || test -x /usr/sbin/{tool}"
                ))
            })
            .collect();
        if !missing.is_empty() {
            eprintln!(
                "skipping the Slurm test: {} not installed ({})",
                missing.join(", "),
                Self::SETUP
            );
            return None;
        }
        if shell("id -u").trim() != "0" {
            eprintln!("skipping the Slurm test: slurmd needs root");
            return None;
        }
        let mut cluster = Self {
            dir: tempdir(),
            started: Vec::new(),
        };
        if !succeeds(MUNGE_ANSWERS) {
            shell(
                "[ -f /etc/munge/munge.key ] || mungekey --create; chown munge:munge /etc/munge/munge.key; chmod 400 /etc/munge/munge.key; mkdir -p /run/munge; chown munge:munge /run/munge",
            );
            // munged runs as the munge user, which may write only below /run/munge.
            let pid_file = Path::new("/run/munge/munged.pid");
            shell("su -s /bin/sh munge -c munged");
            cluster.wait_for("munged", || succeeds(MUNGE_ANSWERS));
            let pid = std::fs::read_to_string(pid_file).unwrap_or_default();
            let pid = pid.trim().parse::<u32>();
            assert!(
                pid.is_ok(),
                "munged started without a pid in {}",
                pid_file.display()
            );
            cluster.started.extend(pid.ok());
        }
        let conf = cluster.conf();
        std::fs::write(&conf, cluster.config()).unwrap();
        for daemon in ["slurmctld -c", "slurmd"] {
            shell(&format!("{daemon} -f {}", conf.display()));
        }
        for pid in ["slurmctld.pid", "slurmd.pid"] {
            let path = cluster.dir.path().join(pid);
            cluster.wait_for(pid, || path.is_file());
            cluster.started.extend(
                std::fs::read_to_string(&path)
                    .unwrap()
                    .trim()
                    .parse::<u32>()
                    .ok(),
            );
        }
        let sinfo = format!("SLURM_CONF={} sinfo -h -o %T", conf.display());
        cluster.wait_for("an idle node", || shell(&sinfo).trim() == "idle");
        Some(cluster)
    }

    fn conf(&self) -> PathBuf {
        self.dir.path().join("slurm.conf")
    }

    /// The configuration of ../shared/slurm-notes.md, on ports of its own.
    fn config(&self) -> String {
        let dir = self.dir.path().display();
        let host = shell("hostname -s");
        let host = host.trim();
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        format!(
            "ClusterName=test\nSlurmctldHost={host}\nSlurmctldPort=16817\nSlurmdPort=16818\n\
             SlurmUser=root\nAuthType=auth/munge\nStateSaveLocation={dir}/state\n\
             SlurmdSpoolDir={dir}/spool\nSlurmctldPidFile={dir}/slurmctld.pid\n\
             SlurmdPidFile={dir}/slurmd.pid\nProctrackType=proctrack/linuxproc\n\
             TaskPlugin=task/none\nSchedulerType=sched/backfill\nSelectType=select/cons_tres\n\
             SelectTypeParameters=CR_Core\nReturnToService=2\nSlurmctldLogFile={dir}/ctld.log\n\
             SlurmdLogFile={dir}/d.log\nNodeName={host} CPUs={cpus} State=UNKNOWN\n\
             PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP\n"
        )
    }

    /// Waits up to 20 s for `ready`; panics with the daemons' logs after that.
    fn wait_for(&self, what: &str, ready: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !ready() {
            assert!(
                Instant::now() < deadline,
                "{what} did not come up in 20 s\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Waits until the queue is empty (at most `limit`).
    fn wait_idle(&self, limit: Duration) {
        let squeue = format!("SLURM_CONF={} squeue -h", self.conf().display());
        let deadline = Instant::now() + limit;
        while !shell(&squeue).trim().is_empty() {
            assert!(
                Instant::now() < deadline,
                "jobs still queued after {limit:?}\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    fn logs(&self) -> String {
        ["ctld.log", "d.log"]
            .iter()
            .map(|log| std::fs::read_to_string(self.dir.path().join(log)).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for pid in &self.started {
            let _ = Command::new("kill").arg(pid.to_string()).status();
        }
    }
}

/// A credential munged encodes and decodes: the daemon is up.
const MUNGE_ANSWERS: &str = "munge -n 2>/dev/null | unmunge >/dev/null 2>&1";

/// Whether `script` exits 0 under `sh -c`.
fn succeeds(script: &str) -> bool {
    Command::new("sh")
        .args(["-c", script])
        .status()
        .is_ok_and(|status| status.success())
}

/// `script`'s stdout under `sh -c`.
fn shell(script: &str) -> String {
    let out = Command::new("sh").args(["-c", script]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// scripts/slurm/submit.sh with 3 tasks on a one-node cluster: the array's shards run at the
/// same time into one features/ folder, the finishing job writes _SUCCESS, and the features
/// equal one plain run's, feature for feature.
#[test]
fn a_slurm_array_of_three_featurizes_what_one_run_does() {
    let Some(cluster) = Cluster::start() else {
        return;
    };
    let whole = tempdir();
    prepare(whole.path(), 9);
    run_ok("featurizer", whole.path(), &FEATURIZE);

    let sharded = tempdir();
    prepare(sharded.path(), 9);
    let submit = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/slurm/submit.sh");
    let out = Command::new(&submit)
        .arg("3")
        .args(FEATURIZE)
        .current_dir(sharded.path())
        .env("SLURM_CONF", cluster.conf())
        .env("FEATURIZER", bin("featurizer"))
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    cluster.wait_idle(Duration::from_secs(300));

    let logs: Vec<String> = files_under(sharded.path())
        .into_iter()
        .filter(|f| f.starts_with("featurize-") && f.ends_with(".out"))
        .map(|f| std::fs::read_to_string(sharded.path().join(f)).unwrap())
        .collect();
    assert_eq!(
        logs.len(),
        4,
        "three tasks and the finishing job: {logs:#?}"
    );
    for k in 1..=3 {
        let from = format!(
            "shard {k}/3 from the Slurm array (SLURM_ARRAY_TASK_ID={k}, SLURM_ARRAY_TASK_MIN=1, SLURM_ARRAY_TASK_STEP=1, SLURM_ARRAY_TASK_COUNT=3)"
        );
        assert_eq!(
            logs.iter().filter(|log| log.contains(&from)).count(),
            1,
            "{from}\n{logs:#?}"
        );
    }
    assert!(
        sharded.path().join("work/features/_SUCCESS").is_file(),
        "{logs:#?}"
    );
    assert_same_features(&all_features(sharded.path()), &all_features(whole.path()));
}
