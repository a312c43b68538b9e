//! tierwise-gateway
