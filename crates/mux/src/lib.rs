//! warren-mux
