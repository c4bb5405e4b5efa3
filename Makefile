# The two commands a newcomer needs: `make up` (install what is missing, start everything)
# and `make test` (install what is missing, start the servers, run the whole test suite).
VENV := .venv/bin

.PHONY: install up down status test lint bench capacity check-scylla-driver cluster-test chaos

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
	@$(VENV)/python -m loadtest.ranking_benchmark

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

# the fault run (docs/reliability.md#the-fault-run): a 3-node Cassandra, 3 Kafka brokers, 2 API processes and 2
# stream workers in .stack/chaos, 300 seeded accounts, the seed traffic while each fault is injected in turn, then
# the audit of every acknowledged write; about 15 minutes. It takes the default stack's ports: `make down` first.
CHAOS := PHOTOS_STACK_DIR=$(CURDIR)/.stack/chaos PHOTOS_MEDIA_DIR=$(CURDIR)/.stack/chaos/media
chaos: install
	$(CHAOS) $(VENV)/photos-stack up --cassandra-nodes 3 --kafka-brokers 3 --api-processes 2 --stream-workers 2
	set -a; . .stack/chaos/cluster.env; set +a; $(CHAOS) $(VENV)/photos-seed --users 300 --out .stack/chaos/load
	$(CHAOS) $(VENV)/python -m loadtest.chaos --host http://127.0.0.1:8080 \
		--credentials .stack/chaos/load/credentials.jsonl --out .stack/chaos/report

# the driver-level tests again, in a second virtualenv where scylla-driver replaces cassandra-driver
check-scylla-driver: install
	@$(VENV)/photos-stack up --services cassandra,kafka,redis
	@infra/check-scylla-driver.sh
