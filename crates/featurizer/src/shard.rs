//! `--shard auto`: this task's shard, from the scheduler that started it.
//!
//! - **Slurm job array** (`sbatch --array=1-N`). Every task sees `SLURM_ARRAY_TASK_ID`,
//!   `SLURM_ARRAY_TASK_MIN`, `SLURM_ARRAY_TASK_MAX`, `SLURM_ARRAY_TASK_STEP` and
//!   `SLURM_ARRAY_TASK_COUNT`; Slurm 22.05 with `--array=1-3` sets MIN=1, MAX=3, STEP=1, COUNT=3
//!   and ID 1, 2 or 3. Ids need not start at 0 or 1 and may step (`--array=0-8:4`: MIN=0,
//!   MAX=8, STEP=4, COUNT=3), so the task is shard k = (ID - MIN) / STEP + 1 of n = COUNT.
//!   An array that is not one range is refused: with `--array=2,5,11` Slurm says MIN=2, MAX=11,
//!   STEP=1, COUNT=3, and the ids do not say which shard is whose.
//! - **Kubernetes Indexed Job** (`completionMode: Indexed`). Every pod sees
//!   `JOB_COMPLETION_INDEX` (0-based) but not the number of completions, which comes from
//!   `--shard-count N`: shard k = INDEX + 1 of n = N.
//!
//! Slurm is asked first (a job submitted from inside a pod may see both). The variables are
//! read once, into a map; [`resolve`] is a pure function of it.

use std::collections::BTreeMap;
use std::str::FromStr;

use featurizer::parts::Shard;

const SLURM_ID: &str = "SLURM_ARRAY_TASK_ID";
const SLURM_MIN: &str = "SLURM_ARRAY_TASK_MIN";
const SLURM_MAX: &str = "SLURM_ARRAY_TASK_MAX";
const SLURM_STEP: &str = "SLURM_ARRAY_TASK_STEP";
const SLURM_COUNT: &str = "SLURM_ARRAY_TASK_COUNT";
const KUBERNETES_INDEX: &str = "JOB_COMPLETION_INDEX";

/// The environment variables [`resolve`] reads.
pub const VARIABLES: [&str; 6] = [
    SLURM_ID,
    SLURM_MIN,
    SLURM_MAX,
    SLURM_STEP,
    SLURM_COUNT,
    KUBERNETES_INDEX,
];

/// The `--shard` flag: a fixed `k/n`, or `auto`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShardSpec {
    Fixed(Shard),
    Auto,
}

impl FromStr for ShardSpec {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        if text == "auto" {
            return Ok(Self::Auto);
        }
        text.parse().map(Self::Fixed).map_err(|_| {
            format!("--shard {text:?}: expected k/n with 1 <= k <= n (e.g. 2/4), or auto")
        })
    }
}

/// The shard a run takes, and where it came from (for the log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub shard: Shard,
    pub from: String,
}

/// [`VARIABLES`] as this process sees them (a value that is not UTF-8 is kept lossily, so
/// it is reported, not ignored).
pub fn environment() -> BTreeMap<String, String> {
    VARIABLES
        .iter()
        .filter_map(|name| {
            std::env::var_os(name).map(|v| (name.to_string(), v.to_string_lossy().into_owned()))
        })
        .collect()
}

/// The shard of `--shard spec` with `--shard-count count`, given the environment `env`
/// (see the module header). Errors are one sentence naming the variable and its value.
pub fn resolve(
    spec: ShardSpec,
    count: Option<usize>,
    env: &BTreeMap<String, String>,
) -> Result<Resolved, String> {
    if count == Some(0) {
        return Err("--shard-count 0 is not a number of shards (expected at least 1)".into());
    }
    match spec {
        ShardSpec::Fixed(_) if count.is_some() => Err(
            "--shard-count is only used with --shard auto (it gives a Kubernetes Indexed Job's \
             number of completions)"
                .into(),
        ),
        ShardSpec::Fixed(shard) => Ok(Resolved {
            shard,
            from: format!("--shard {shard}"),
        }),
        ShardSpec::Auto => match (env.get(SLURM_ID), env.get(KUBERNETES_INDEX)) {
            (Some(id), _) => slurm(id, count, env),
            (None, Some(index)) => kubernetes(index, count),
            (None, None) => Err(format!(
                "--shard auto needs a Slurm array job ({SLURM_ID}) or a Kubernetes Indexed Job \
                 ({KUBERNETES_INDEX}), and neither variable is set; elsewhere give the shard as \
                 --shard k/n"
            )),
        },
    }
}

fn number(name: &str, value: &str) -> Result<usize, String> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "--shard auto: {name}={value:?} is not a whole number"
        ));
    }
    value
        .parse()
        .map_err(|_| format!("--shard auto: {name}={value} is too large"))
}

fn slurm(
    id: &str,
    count: Option<usize>,
    env: &BTreeMap<String, String>,
) -> Result<Resolved, String> {
    let id = number(SLURM_ID, id)?;
    let required = |name: &str| match env.get(name) {
        Some(value) => number(name, value),
        None => Err(format!(
            "--shard auto: {SLURM_ID}={id} is set but {name} is not (Slurm sets both in every \
             task of an array job)"
        )),
    };
    let optional = |name: &str| env.get(name).map(|value| number(name, value)).transpose();
    let min = required(SLURM_MIN)?;
    let tasks = required(SLURM_COUNT)?;
    if tasks == 0 {
        return Err(format!(
            "--shard auto: {SLURM_COUNT}=0 is not a number of tasks (expected at least 1)"
        ));
    }
    let step = optional(SLURM_STEP)?.unwrap_or(1);
    if step == 0 {
        return Err(format!(
            "--shard auto: {SLURM_STEP}=0 is not an array step (expected at least 1)"
        ));
    }
    let last = (tasks - 1)
        .checked_mul(step)
        .and_then(|span| span.checked_add(min));
    let max = optional(SLURM_MAX)?;
    let Some(last) = last.filter(|last| max.is_none_or(|max| max == *last)) else {
        let max = max.map_or_else(String::new, |max| format!("{SLURM_MAX}={max}, "));
        return Err(format!(
            "--shard auto: the Slurm array is not one range ({SLURM_MIN}={min}, {max}\
             {SLURM_STEP}={step}, {SLURM_COUNT}={tasks}), so its task ids do not say which \
             shard is whose; submit it as --array=1-{tasks}"
        ));
    };
    if id < min || id > last || (id - min) % step != 0 {
        let range = match (tasks, step) {
            (1, _) => format!("{min}"),
            (_, 1) => format!("{min}-{last}"),
            _ => format!("{min}-{last}:{step}"),
        };
        return Err(format!(
            "--shard auto: {SLURM_ID}={id} is not a task of the array {range} that \
             {SLURM_MIN}={min}, {SLURM_STEP}={step} and {SLURM_COUNT}={tasks} describe"
        ));
    }
    if let Some(count) = count.filter(|count| *count != tasks) {
        return Err(format!(
            "--shard auto: --shard-count {count} disagrees with {SLURM_COUNT}={tasks} (in a \
             Slurm array the count comes from Slurm; leave --shard-count out)"
        ));
    }
    let shard = Shard {
        index: (id - min) / step + 1,
        count: tasks,
    };
    Ok(Resolved {
        shard,
        from: format!(
            "the Slurm array ({SLURM_ID}={id}, {SLURM_MIN}={min}, {SLURM_STEP}={step}, \
             {SLURM_COUNT}={tasks})"
        ),
    })
}

fn kubernetes(index: &str, count: Option<usize>) -> Result<Resolved, String> {
    let index = number(KUBERNETES_INDEX, index)?;
    let Some(count) = count else {
        return Err(format!(
            "--shard auto: {KUBERNETES_INDEX}={index} (a Kubernetes Indexed Job) needs the \
             number of shards: pass --shard-count N, N being the Job's completions"
        ));
    };
    if index >= count {
        return Err(format!(
            "--shard auto: {KUBERNETES_INDEX}={index} is not below --shard-count {count} (the \
             index counts from 0, so --shard-count must be the Job's completions)"
        ));
    }
    Ok(Resolved {
        shard: Shard {
            index: index + 1,
            count,
        },
        from: format!(
            "the Kubernetes Indexed Job ({KUBERNETES_INDEX}={index}, --shard-count {count})"
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// What Slurm 22.05 sets in task `id` of `sbatch --array=MIN-MAX:STEP`.
    fn slurm_task(
        id: &str,
        min: &str,
        max: &str,
        step: &str,
        count: &str,
    ) -> BTreeMap<String, String> {
        env(&[
            (SLURM_ID, id),
            (SLURM_MIN, min),
            (SLURM_MAX, max),
            (SLURM_STEP, step),
            (SLURM_COUNT, count),
            ("SLURM_ARRAY_JOB_ID", "41"),
        ])
    }

    fn auto(env: &BTreeMap<String, String>, count: Option<usize>) -> Result<String, String> {
        resolve(ShardSpec::Auto, count, env).map(|r| r.shard.to_string())
    }

    fn shard(k: usize, n: usize) -> Shard {
        Shard { index: k, count: n }
    }

    #[test]
    fn the_flag_is_k_of_n_or_auto() {
        assert_eq!("auto".parse(), Ok(ShardSpec::Auto));
        assert_eq!("2/4".parse(), Ok(ShardSpec::Fixed(shard(2, 4))));
        for bad in ["Auto", "0/2", "3/2", "x", ""] {
            assert_eq!(
                bad.parse::<ShardSpec>(),
                Err(format!(
                    "--shard {bad:?}: expected k/n with 1 <= k <= n (e.g. 2/4), or auto"
                ))
            );
        }
    }

    #[test]
    fn a_fixed_shard_ignores_the_environment_and_takes_no_count() {
        let slurm = slurm_task("2", "1", "3", "1", "3");
        assert_eq!(
            resolve(ShardSpec::Fixed(shard(1, 2)), None, &slurm),
            Ok(Resolved {
                shard: shard(1, 2),
                from: "--shard 1/2".into()
            })
        );
        assert_eq!(
            resolve(ShardSpec::Fixed(Shard::WHOLE), Some(3), &env(&[])),
            Err(
                "--shard-count is only used with --shard auto (it gives a Kubernetes Indexed \
                 Job's number of completions)"
                    .into()
            )
        );
    }

    #[test]
    fn slurm_arrays_number_their_tasks_from_min_in_steps() {
        // (--array, ids, MIN, MAX, STEP, COUNT) as Slurm 22.05 sets them.
        let arrays = [
            ("1-3", ["1", "2", "3"], "1", "3", "1", "3"),
            ("0-2", ["0", "1", "2"], "0", "2", "1", "3"),
            ("10-12", ["10", "11", "12"], "10", "12", "1", "3"),
            ("0-8:4", ["0", "4", "8"], "0", "8", "4", "3"),
        ];
        for (array, ids, min, max, step, count) in arrays {
            let shards: Vec<_> = ids
                .iter()
                .map(|id| auto(&slurm_task(id, min, max, step, count), None))
                .collect();
            assert_eq!(
                shards,
                [Ok("1/3".into()), Ok("2/3".into()), Ok("3/3".into())],
                "{array}"
            );
        }
        assert_eq!(
            auto(&slurm_task("7", "7", "7", "1", "1"), None),
            Ok("1/1".into())
        );
        assert_eq!(
            resolve(ShardSpec::Auto, None, &slurm_task("2", "1", "3", "1", "3"))
                .unwrap()
                .from,
            "the Slurm array (SLURM_ARRAY_TASK_ID=2, SLURM_ARRAY_TASK_MIN=1, \
             SLURM_ARRAY_TASK_STEP=1, SLURM_ARRAY_TASK_COUNT=3)"
        );
        // Older Slurm without MAX and STEP: a range from MIN.
        let bare = env(&[(SLURM_ID, "5"), (SLURM_MIN, "4"), (SLURM_COUNT, "2")]);
        assert_eq!(auto(&bare, None), Ok("2/2".into()));
        // A count given as well must agree; Slurm is asked before Kubernetes.
        let mut both = slurm_task("3", "1", "3", "1", "3");
        both.insert(KUBERNETES_INDEX.into(), "0".into());
        assert_eq!(auto(&both, Some(3)), Ok("3/3".into()));
    }

    #[test]
    fn bad_slurm_variables_are_named_with_their_values() {
        let cases = [
            (
                slurm_task("x", "1", "3", "1", "3"),
                "--shard auto: SLURM_ARRAY_TASK_ID=\"x\" is not a whole number",
            ),
            (
                slurm_task("-1", "1", "3", "1", "3"),
                "--shard auto: SLURM_ARRAY_TASK_ID=\"-1\" is not a whole number",
            ),
            (
                slurm_task("", "1", "3", "1", "3"),
                "--shard auto: SLURM_ARRAY_TASK_ID=\"\" is not a whole number",
            ),
            (
                slurm_task("2", "one", "3", "1", "3"),
                "--shard auto: SLURM_ARRAY_TASK_MIN=\"one\" is not a whole number",
            ),
            (
                slurm_task("2", "1", "3", "1", "3 "),
                "--shard auto: SLURM_ARRAY_TASK_COUNT=\"3 \" is not a whole number",
            ),
            (
                slurm_task("2", "1", "3", "1", "99999999999999999999999"),
                "--shard auto: SLURM_ARRAY_TASK_COUNT=99999999999999999999999 is too large",
            ),
            (
                slurm_task("2", "1", "3", "1", "0"),
                "--shard auto: SLURM_ARRAY_TASK_COUNT=0 is not a number of tasks (expected at \
                 least 1)",
            ),
            (
                slurm_task("2", "1", "3", "0", "3"),
                "--shard auto: SLURM_ARRAY_TASK_STEP=0 is not an array step (expected at least 1)",
            ),
            (
                env(&[(SLURM_ID, "2"), (SLURM_COUNT, "3")]),
                "--shard auto: SLURM_ARRAY_TASK_ID=2 is set but SLURM_ARRAY_TASK_MIN is not \
                 (Slurm sets both in every task of an array job)",
            ),
            (
                env(&[(SLURM_ID, "2"), (SLURM_MIN, "1")]),
                "--shard auto: SLURM_ARRAY_TASK_ID=2 is set but SLURM_ARRAY_TASK_COUNT is not \
                 (Slurm sets both in every task of an array job)",
            ),
            (
                slurm_task("4", "1", "3", "1", "3"),
                "--shard auto: SLURM_ARRAY_TASK_ID=4 is not a task of the array 1-3 that \
                 SLURM_ARRAY_TASK_MIN=1, SLURM_ARRAY_TASK_STEP=1 and SLURM_ARRAY_TASK_COUNT=3 \
                 describe",
            ),
            (
                slurm_task("0", "1", "3", "1", "3"),
                "--shard auto: SLURM_ARRAY_TASK_ID=0 is not a task of the array 1-3 that \
                 SLURM_ARRAY_TASK_MIN=1, SLURM_ARRAY_TASK_STEP=1 and SLURM_ARRAY_TASK_COUNT=3 \
                 describe",
            ),
            (
                slurm_task("2", "0", "8", "4", "3"),
                "--shard auto: SLURM_ARRAY_TASK_ID=2 is not a task of the array 0-8:4 that \
                 SLURM_ARRAY_TASK_MIN=0, SLURM_ARRAY_TASK_STEP=4 and SLURM_ARRAY_TASK_COUNT=3 \
                 describe",
            ),
            (
                slurm_task("8", "7", "7", "1", "1"),
                "--shard auto: SLURM_ARRAY_TASK_ID=8 is not a task of the array 7 that \
                 SLURM_ARRAY_TASK_MIN=7, SLURM_ARRAY_TASK_STEP=1 and SLURM_ARRAY_TASK_COUNT=1 \
                 describe",
            ),
            (
                // --array=2,5,11, as Slurm 22.05 describes it.
                slurm_task("5", "2", "11", "1", "3"),
                "--shard auto: the Slurm array is not one range (SLURM_ARRAY_TASK_MIN=2, \
                 SLURM_ARRAY_TASK_MAX=11, SLURM_ARRAY_TASK_STEP=1, SLURM_ARRAY_TASK_COUNT=3), so \
                 its task ids do not say which shard is whose; submit it as --array=1-3",
            ),
            (
                env(&[
                    (SLURM_ID, "1"),
                    (SLURM_MIN, "1"),
                    (SLURM_STEP, "18446744073709551615"),
                    (SLURM_COUNT, "3"),
                ]),
                "--shard auto: the Slurm array is not one range (SLURM_ARRAY_TASK_MIN=1, \
                 SLURM_ARRAY_TASK_STEP=18446744073709551615, SLURM_ARRAY_TASK_COUNT=3), so its \
                 task ids do not say which shard is whose; submit it as --array=1-3",
            ),
        ];
        for (env, message) in cases {
            assert_eq!(auto(&env, None), Err(message.to_string()), "{env:?}");
        }
        assert_eq!(
            auto(&slurm_task("2", "1", "3", "1", "3"), Some(4)),
            Err(
                "--shard auto: --shard-count 4 disagrees with SLURM_ARRAY_TASK_COUNT=3 (in a \
                 Slurm array the count comes from Slurm; leave --shard-count out)"
                    .into()
            )
        );
    }

    #[test]
    fn kubernetes_indexes_count_from_zero_and_the_count_comes_from_the_flag() {
        let pod = |index: &str| env(&[(KUBERNETES_INDEX, index), ("HOSTNAME", "featurize-0-x")]);
        let shards: Vec<_> = ["0", "1", "2"]
            .iter()
            .map(|i| auto(&pod(i), Some(3)))
            .collect();
        assert_eq!(
            shards,
            [Ok("1/3".into()), Ok("2/3".into()), Ok("3/3".into())]
        );
        assert_eq!(
            resolve(ShardSpec::Auto, Some(3), &pod("1")).unwrap().from,
            "the Kubernetes Indexed Job (JOB_COMPLETION_INDEX=1, --shard-count 3)"
        );
        let cases = [
            (
                pod("1"),
                None,
                "--shard auto: JOB_COMPLETION_INDEX=1 (a Kubernetes Indexed Job) needs the number \
                 of shards: pass --shard-count N, N being the Job's completions",
            ),
            (
                pod("3"),
                Some(3),
                "--shard auto: JOB_COMPLETION_INDEX=3 is not below --shard-count 3 (the index \
                 counts from 0, so --shard-count must be the Job's completions)",
            ),
            (
                pod("one"),
                Some(3),
                "--shard auto: JOB_COMPLETION_INDEX=\"one\" is not a whole number",
            ),
            (
                pod("1"),
                Some(0),
                "--shard-count 0 is not a number of shards (expected at least 1)",
            ),
        ];
        for (env, count, message) in cases {
            assert_eq!(
                auto(&env, count),
                Err(message.to_string()),
                "{env:?} {count:?}"
            );
        }
    }

    #[test]
    fn without_a_scheduler_auto_is_an_error() {
        let message = "--shard auto needs a Slurm array job (SLURM_ARRAY_TASK_ID) or a \
                       Kubernetes Indexed Job (JOB_COMPLETION_INDEX), and neither variable is \
                       set; elsewhere give the shard as --shard k/n";
        // A plain Slurm job (not an array) sets SLURM_JOB_ID but no SLURM_ARRAY_* variable.
        for env in [env(&[]), env(&[("SLURM_JOB_ID", "5")])] {
            assert_eq!(auto(&env, None), Err(message.into()));
            assert_eq!(auto(&env, Some(3)), Err(message.into()));
        }
    }
}
