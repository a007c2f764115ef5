# fluxd and fluxctl on Debian, linked against Debian's libgit2 (1.5, with libssh2).
FROM golang:1.26-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends libgit2-dev pkg-config && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=1 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/ ./cmd/fluxd ./cmd/fluxctl

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends libgit2-1.5 ca-certificates openssh-client \
    && rm -rf /var/lib/apt/lists/* && useradd --system --uid 10001 --home-dir /home/fluxd --create-home fluxd
COPY --from=build /out/fluxd /out/fluxctl /usr/local/bin/
USER 10001
EXPOSE 3030
ENTRYPOINT ["/usr/local/bin/fluxd"]
