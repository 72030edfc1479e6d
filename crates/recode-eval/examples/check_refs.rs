//! Library-level check-refs (same code path as `recode eval check-refs`, without the CLI):
//! `cargo run -p recode-eval --example check_refs -- DATA [WORKERS] [--fixed-fragments]`.

use recode_eval::arena::{load_arena, prepare, SplitMode};
use recode_eval::checkrefs::check_refs;
use recode_eval::executor::{ExecConfig, ExecutorPool};
use recode_eval::setup::{default_venv_dir, ready_python};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let data = args
        .first()
        .ok_or("usage: check_refs DATA [WORKERS] [--fixed-fragments]")?;
    let workers = args.get(1).and_then(|w| w.parse().ok()).unwrap_or(2);
    let mode = if args.iter().any(|a| a == "--fixed-fragments") {
        SplitMode::GlueFragments
    } else {
        SplitMode::Paper
    };
    let set = prepare(load_arena(data.as_ref())?, mode);
    let cfg = ExecConfig::new(ready_python(&default_venv_dir())?, workers);
    let t = std::time::Instant::now();
    let pool = ExecutorPool::start(cfg)?;
    eprintln!(
        "pool ready in {:.1} s: {:?}",
        t.elapsed().as_secs_f64(),
        pool.hello()
    );
    let (report, _) = check_refs(&set, &pool, Default::default(), &|| {});
    println!(
        "pass with update {}/{}, fail without {}/{}, {} programs in {:.1} s ({:.1}/s)",
        report.pass_with_update,
        report.total,
        report.fail_without_update,
        report.total,
        report.programs,
        report.seconds,
        report.programs_per_sec
    );
    for f in &report.failures {
        let pieces: Vec<String> = f
            .pieces
            .iter()
            .map(|p| format!("test {} {} ({:.80})", p.piece, p.error_class, p.verdict))
            .collect();
        println!("FAIL {} [{}] {}", f.id, f.kind, pieces.join("; "));
    }
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}
