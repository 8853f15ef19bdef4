use clap::Parser;

fn main() {
    let cli = mailauth::cli::Cli::parse();
    let code = match mailauth::cli::run(cli) {
        Ok(code) => code,
        Err(f) => {
            eprintln!("error: {}", f.message);
            f.code
        }
    };
    std::process::exit(code);
}
