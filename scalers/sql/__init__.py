"""SQL scalers (postgresql, mysql): a number from a query, one connection pool per server and user."""
