//! powerdns provider
