"""Payment provider adapters: no Flask, no database; configuration in, dataclasses out."""
