//! cloudflare provider
