-- Report jobs: queued -> running -> completed (or failed).
CREATE TABLE jobs (
    id                       UUID PRIMARY KEY,
    report_type              TEXT        NOT NULL,
    status                   TEXT        NOT NULL CHECK (status IN ('queued', 'running', 'completed', 'failed')),
    iterations               BIGINT      NOT NULL CHECK (iterations > 0),
    report_hash              TEXT,
    computation_time_seconds DOUBLE PRECISION,
    created_at               TIMESTAMPTZ NOT NULL DEFAULT now(),
    started_at               TIMESTAMPTZ,
    completed_at             TIMESTAMPTZ
);
