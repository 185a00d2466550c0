-- One PostgreSQL server, three databases: Airflow's metadata, MLflow's tracking/registry store
-- and the app's prediction store. Each has its own login role that owns it.
--
-- Run by the postgres image on first start (docker-entrypoint-initdb.d, as POSTGRES_USER), and
-- safe to run again to change the passwords after editing .env:
--   docker compose exec postgres psql -U "$POSTGRES_USER" -d postgres \
--     -f /docker-entrypoint-initdb.d/10-composer-id.sql
-- Passwords come from the container's environment (psql 15+ \getenv), never from this file.
\set ON_ERROR_STOP on

\getenv airflow_db_password AIRFLOW_DB_PASSWORD
\getenv mlflow_db_password MLFLOW_DB_PASSWORD
\getenv app_db_password APP_DB_PASSWORD

\if :{?airflow_db_password}
\else
  \warn 'AIRFLOW_DB_PASSWORD is not set in the postgres container (see .env.example)'
  SELECT 1 / 0 AS "AIRFLOW_DB_PASSWORD is not set";
\endif
\if :{?mlflow_db_password}
\else
  \warn 'MLFLOW_DB_PASSWORD is not set in the postgres container (see .env.example)'
  SELECT 1 / 0 AS "MLFLOW_DB_PASSWORD is not set";
\endif
\if :{?app_db_password}
\else
  \warn 'APP_DB_PASSWORD is not set in the postgres container (see .env.example)'
  SELECT 1 / 0 AS "APP_DB_PASSWORD is not set";
\endif

-- Roles: created once, password (re)set every run.
SELECT format('CREATE ROLE %I LOGIN', name)
FROM (VALUES ('airflow'), ('mlflow'), ('composer_app')) AS wanted(name)
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = wanted.name)
\gexec

ALTER ROLE airflow WITH LOGIN PASSWORD :'airflow_db_password';
ALTER ROLE mlflow WITH LOGIN PASSWORD :'mlflow_db_password';
ALTER ROLE composer_app WITH LOGIN PASSWORD :'app_db_password';

-- Databases, each owned by its role (PostgreSQL 15+: the owner controls the public schema).
SELECT format('CREATE DATABASE %I OWNER %I ENCODING %L TEMPLATE template0', db, owner, 'UTF8')
FROM (VALUES ('airflow', 'airflow'), ('mlflow', 'mlflow'), ('predictions', 'composer_app'))
  AS wanted(db, owner)
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = wanted.db)
\gexec

-- Nobody else connects to them.
REVOKE ALL ON DATABASE airflow FROM PUBLIC;
REVOKE ALL ON DATABASE mlflow FROM PUBLIC;
REVOKE ALL ON DATABASE predictions FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE airflow TO airflow;
GRANT CONNECT, TEMPORARY ON DATABASE mlflow TO mlflow;
GRANT CONNECT, TEMPORARY ON DATABASE predictions TO composer_app;
