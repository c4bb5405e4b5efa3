# The two commands a newcomer needs: `make up` (install what is missing, start everything)
# and `make test` (install what is missing, start the servers, run the whole test suite).
VENV := .venv/bin

.PHONY: install up down status test lint bench capacity check-scylla-driver cluster-test

install:
	@infra/install.sh

up: install
	@$(VENV)/photos-stack up

down:
	@$(VENV)/photos-stack down

status:
	@$(VENV)/photos-stack status

test: install
	@$(VENV)/photos-stack up --services cassandra,kafka,redis
	@$(VENV)/ruff check .
	@$(VENV)/python -m pytest

lint:
	@$(VENV)/ruff check .

# every benchmark, each printing its figures and its ratios against a baseline measured in the same run
bench:
	@infra/install.sh --bench
	@$(VENV)/photos-stack up --services cassandra,kafka,redis
	@$(VENV)/python -m loadtest.driver_ceiling
	@$(VENV)/python -m loadtest.media_benchmark
	@$(VENV)/python -m loadtest.feed_benchmark
	@$(VENV)/python -m loadtest.like_benchmark
	@$(VENV)/python -m loadtest.write_benchmark
	@$(VENV)/python -m loadtest.search_benchmark
	@$(VENV)/python -m loadtest.tray_benchmark

# for a newcomer, in under 10 minutes: the whole stack, a small data set, a short step run and the bill of
# materials it implies (docs/capacity.md); everything lands in .stack/load/
CAPACITY_OUT := .stack/load/capacity
capacity: up
	@$(VENV)/photos-seed --users 2000 --seed 2
	@$(VENV)/python -m loadtest.run --shape step --host http://127.0.0.1:8080 --out $(CAPACITY_OUT) \
		--start-users 2 --step-users 3 --step-seconds 20 --warmup 5 --profile-seconds 5
	@$(VENV)/photos-capacity --profile $(CAPACITY_OUT)/profile.json

# a 3-node Cassandra and a 3-broker Kafka of the test's own (docs/reliability.md#a-cluster-on-this-machine):
# one node of each killed under a write load, every acknowledged write audited
cluster-test: install
	PHOTOS_TEST_CLUSTER_FULL=1 $(VENV)/python -m pytest -m cluster -s

# the driver-level tests again, in a second virtualenv where scylla-driver replaces cassandra-driver
check-scylla-driver: install
	@$(VENV)/photos-stack up --services cassandra,kafka,redis
	@infra/check-scylla-driver.sh
