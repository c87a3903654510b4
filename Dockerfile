# Build: docker build -t omni .
# Run:   docker run -p 8090:8090 -v omni_data:/data -v omni_keys:/keys omni
#        (/keys holds the key that encrypts connector secrets, apart from the
#        data and its backups: back it up separately; see docs/operations.md)
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
# Static, pure-Go binary (SQLite is the modernc.org port, no cgo).
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X github.com/omni/omni/core/api.Version=${VERSION}" -o /out/omni . \
 && mkdir -p /out/data /out/keys

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/omni /omni
COPY --from=build --chown=nonroot:nonroot /out/data /data
COPY --from=build --chown=nonroot:nonroot /out/keys /keys
USER nonroot:nonroot
ENV OMNI_HTTP=0.0.0.0:8090 \
    OMNI_DATA_DIR=/data \
    OMNI_SECRET_KEY_FILE=/keys/secret.key
VOLUME ["/data", "/keys"]
EXPOSE 8090
# Set OMNI_BUS_LISTEN=0.0.0.0:4222 and publish 4222 to watch the bus with the nats CLI.
# `omni health` reads the same settings as serve (OMNI_HTTP above, or one
# given with docker run -e) and probes 0.0.0.0 on 127.0.0.1.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["/omni", "health"]
ENTRYPOINT ["/omni"]
CMD ["serve"]
