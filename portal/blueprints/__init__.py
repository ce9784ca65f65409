"""One blueprint per audience: buyers and providers (public), owners (owner/)."""
