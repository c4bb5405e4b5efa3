"""Load tests, the data seeder, benchmarks and the capacity planner."""
