-- Every email the service has sent (the simulated SMTP call finished).
CREATE TABLE emails (
    id         BIGSERIAL PRIMARY KEY,
    recipient  TEXT        NOT NULL,
    subject    TEXT        NOT NULL,
    user_id    BIGINT,
    sent_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX emails_recipient_idx ON emails (lower(recipient));
CREATE INDEX emails_user_idx ON emails (user_id);
