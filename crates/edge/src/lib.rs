//! warren-edge
