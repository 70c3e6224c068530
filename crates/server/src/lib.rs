//! warrend
