//! The `dockplug` binary: see the `dockplug_cli` crate docs for commands and exit codes.

use std::ffi::OsString;

fn main() {
    let args: Vec<OsString> = std::env::args_os().collect();
    let mut builder = if dockplug_cli::wants_single_thread(&args) {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(2);
        b
    };
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("dockplug: cannot start the async runtime: {e}");
            std::process::exit(dockplug_cli::EXIT_FAILURE);
        }
    };
    let code = runtime.block_on(async {
        let (mut out, mut err) = (std::io::stdout(), std::io::stderr());
        dockplug_cli::run(args, &mut out, &mut err).await
    });
    std::process::exit(code);
}
