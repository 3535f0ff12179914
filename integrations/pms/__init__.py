"""Property-management-system (PMS) interfaces: FIAS and the SALTO Industry Standard protocol."""
