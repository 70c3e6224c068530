//! warren-model
