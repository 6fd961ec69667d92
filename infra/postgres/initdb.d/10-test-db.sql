-- docker-compose only: the image creates role + db "zapstream" from its env;
-- the test database is created here (runs once, on an empty volume).
CREATE DATABASE zapstream_test OWNER zapstream;
