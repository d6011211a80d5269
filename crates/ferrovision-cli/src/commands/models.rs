//! `ferrovision models`: the model zoo's architectures and the pretrained weights of the local
//! model cache (installed or not).

use crate::error::Result;
use clap::Args;
use ferrovision_import::hub;

/// `ferrovision models`.
#[derive(Debug, Clone, Args)]
pub struct ModelsArgs {}

/// Prints the zoo and the cache catalog.
pub fn run(_: ModelsArgs) -> Result<()> {
    println!("Architectures (--model NAME; default input C,H,W and classes):");
    for e in ferrovision_models::REGISTRY {
        let [c, h, w] = e.default_input;
        let defaults = format!("{c},{h},{w} x{}", e.default_classes);
        println!("  {:<20} {defaults:<17} {}", e.name, e.description);
    }
    println!(
        "\nPretrained weights (--weights/--pretrained NAME) in {}:",
        hub::models_dir().display()
    );
    for e in hub::CATALOG {
        let state = if hub::models_dir().join(e.file).is_file() {
            "installed"
        } else {
            "not installed (scripts/fetch_models.sh)"
        };
        // Weights whose architecture the zoo does not have yet are readable (convert, the
        // import API) but not buildable: say so rather than name a model that is not there.
        let arch = if ferrovision_models::lookup(e.arch).is_ok() {
            format!("for {}", e.arch)
        } else {
            "weights only".to_string()
        };
        println!("  {:<20} {:<24} {state}; {}", e.name, arch, e.origin);
    }
    Ok(())
}
