"""Neural-network building blocks (filled in by the nn issue); `functional` holds the stateless layer functions."""
