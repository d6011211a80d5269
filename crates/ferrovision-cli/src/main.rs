//! `ferrovision`: train, evaluate and use image classifiers from the command line.

fn main() {
    // A panic is a bug in ferrovision, but the user should still get one plain line, not a
    // backtrace.
    std::panic::set_hook(Box::new(|info| {
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        eprintln!(
            "error: internal error: {msg}{at} (this is a bug in ferrovision; please report it)"
        );
    }));
    let code = std::panic::catch_unwind(|| ferrovision_cli::main_with_args(std::env::args_os()))
        .unwrap_or(1);
    std::process::exit(code);
}
