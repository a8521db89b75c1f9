"""aquasurf_fast: fast activation-function search with the AQuaSurF surrogate."""
