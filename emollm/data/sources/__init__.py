"""One converter per EmoBench source (paper Table 1), each reading that dataset's own layout."""
