"""The ticket store's tables, one module per area; ``intaked.store.models`` re-exports them all."""
