package sdk

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	pb "github.com/omni/omni/plugins/sdk/internal/proto"
)

// Handshake values shared by Omni and every connector. The magic cookie
// only stops a connector binary from being run by hand by mistake; the
// protocol version is what guards compatibility.
const (
	MagicCookieKey   = "OMNI_CONNECTOR_PLUGIN"
	MagicCookieValue = "b6a1c1c4-5d5e-4f43-9a8c-omni-connector"
	// PluginName is the key of the connector in go-plugin's plugin set.
	PluginName = "connector"
)

// Handshake is go-plugin's handshake for ProtocolVersion.
var Handshake = HandshakeFor(ProtocolVersion)

// HandshakeFor returns the handshake of another protocol version (for
// tests of version negotiation).
func HandshakeFor(version uint) plugin.HandshakeConfig {
	return plugin.HandshakeConfig{ProtocolVersion: version, MagicCookieKey: MagicCookieKey, MagicCookieValue: MagicCookieValue}
}

// Serve runs c as a plugin; it is the whole main of a connector:
//
//	func main() { sdk.Serve(myconnector.New()) }
//
// It returns when the host closes the plugin.
func Serve(c Connector) {
	plugin.Serve(ServeConfig(c, ProtocolVersion))
}

// ServeConfig is the go-plugin configuration Serve uses, for callers that
// need to adjust it (tests).
func ServeConfig(c Connector, version uint) *plugin.ServeConfig {
	return &plugin.ServeConfig{
		HandshakeConfig: HandshakeFor(version),
		Plugins:         PluginSet(c),
		GRPCServer:      plugin.DefaultGRPCServer,
		// JSON on stderr lets the host keep each line's level.
		Logger: hclog.New(&hclog.LoggerOptions{Output: os.Stderr, JSONFormat: true, Level: hclog.Debug}),
	}
}

// PluginSet is the go-plugin plugin set of a connector. The host passes
// PluginSet(nil).
func PluginSet(c Connector) plugin.PluginSet {
	return plugin.PluginSet{PluginName: &GRPCPlugin{Impl: c}}
}

// GRPCPlugin adapts a Connector to go-plugin.
type GRPCPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	Impl Connector
}

// GRPCServer registers the connector service in the plugin process.
func (p *GRPCPlugin) GRPCServer(broker *plugin.GRPCBroker, s *grpc.Server) error {
	pb.RegisterConnectorServer(s, &server{impl: p.Impl, broker: broker})
	return nil
}

// GRPCClient returns a *Client in the host process.
func (p *GRPCPlugin) GRPCClient(ctx context.Context, broker *plugin.GRPCBroker, cc *grpc.ClientConn) (any, error) {
	return &Client{rpc: pb.NewConnectorClient(cc), health: healthpb.NewHealthClient(cc), broker: broker}, nil
}

// ---- plugin side ----

type server struct {
	pb.UnimplementedConnectorServer
	impl   Connector
	broker *plugin.GRPCBroker

	mu     sync.Mutex
	hostID uint32
	host   *remoteHost
}

func (s *server) Describe(ctx context.Context, _ *pb.Empty) (*pb.Description, error) {
	d, err := s.impl.Describe(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	return descriptionToPB(d), nil
}

func (s *server) Configure(ctx context.Context, req *pb.ConfigureRequest) (*pb.Empty, error) {
	host, err := s.hostFor(req.GetHostBrokerId())
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "dial host callbacks: %v", err)
	}
	cfg := Config(req.GetConfig())
	if cfg == nil {
		cfg = Config{}
	}
	if err := s.impl.Configure(ctx, cfg, host); err != nil {
		var ce *ConfigError
		if errors.As(err, &ce) {
			return nil, status.Error(codes.InvalidArgument, ce.Error())
		}
		return nil, toStatus(err)
	}
	return &pb.Empty{}, nil
}

// hostFor dials the host's callback server once per broker id.
func (s *server) hostFor(id uint32) (Host, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if id == 0 {
		return discardHost{}, nil
	}
	if s.host != nil && s.hostID == id {
		return s.host, nil
	}
	conn, err := s.broker.Dial(id)
	if err != nil {
		return nil, err
	}
	if s.host != nil {
		_ = s.host.conn.Close()
	}
	s.hostID, s.host = id, &remoteHost{rpc: pb.NewHostClient(conn), conn: conn}
	return s.host, nil
}

func (s *server) HandleWebhook(ctx context.Context, req *pb.WebhookRequest) (*pb.WebhookResponse, error) {
	resp, err := s.impl.HandleWebhook(ctx, webhookRequestFromPB(req))
	if err != nil {
		return nil, toStatus(err)
	}
	if resp == nil {
		resp = &WebhookResponse{Status: 200}
	}
	return webhookResponseToPB(resp), nil
}

func (s *server) Send(ctx context.Context, msg *pb.OutboundMessage) (*pb.SendResponse, error) {
	res, err := s.impl.Send(ctx, outboundFromPB(msg))
	if err != nil {
		return &pb.SendResponse{Error: sendErrorToPB(err)}, nil
	}
	if res == nil || res.ProviderMessageID == "" {
		return &pb.SendResponse{Error: &pb.SendError{Kind: string(KindRetryable), Reason: "connector returned no provider message id"}}, nil
	}
	return &pb.SendResponse{ProviderMessageId: res.ProviderMessageID}, nil
}

func (s *server) Backfill(req *pb.BackfillRequest, stream pb.Connector_BackfillServer) error {
	err := s.impl.Backfill(stream.Context(), &BackfillRequest{Since: fromUnixNano(req.GetSinceUnixNano()), Cursor: req.GetCursor()}, streamSink{stream})
	if err != nil {
		return toStatus(err)
	}
	return nil
}

func (s *server) Health(ctx context.Context, _ *pb.Empty) (*pb.Empty, error) {
	if err := s.impl.Health(ctx); err != nil {
		return nil, toStatus(err)
	}
	return &pb.Empty{}, nil
}

type streamSink struct{ s pb.Connector_BackfillServer }

func (k streamSink) Batch(_ context.Context, evs []Event, cursor string, p Progress) error {
	return k.s.Send(&pb.BackfillBatch{Events: eventsToPB(evs), Cursor: cursor, Done: p.Done, Total: p.Total, Message: p.Message})
}

func toStatus(err error) error {
	if _, ok := status.FromError(err); ok && status.Code(err) != codes.Unknown {
		return err
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return status.Error(codes.DeadlineExceeded, err.Error())
	}
	if errors.Is(err, context.Canceled) {
		return status.Error(codes.Canceled, err.Error())
	}
	return status.Error(codes.Unknown, err.Error())
}

// remoteHost is the host's callback service as seen from the plugin.
type remoteHost struct {
	rpc  pb.HostClient
	conn *grpc.ClientConn
}

func (h *remoteHost) Emit(ctx context.Context, evs []Event) error {
	_, err := h.rpc.Emit(ctx, &pb.EmitRequest{Events: eventsToPB(evs)})
	if err != nil {
		return errors.New(status.Convert(err).Message())
	}
	return nil
}

func (h *remoteHost) Log(level, msg string, keyvals ...any) {
	kv := make([]string, 0, len(keyvals))
	for _, v := range keyvals {
		kv = append(kv, fmt.Sprint(v))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, _ = h.rpc.Log(ctx, &pb.LogRequest{Level: level, Message: msg, Keyvals: kv})
}

type discardHost struct{}

func (discardHost) Emit(context.Context, []Event) error { return errors.New("no host to emit to") }
func (discardHost) Log(string, string, ...any)          {}

// ---- host side ----

// Client is a connector running in another process, seen from the host.
// It implements Connector; Configure serves host over go-plugin's broker.
type Client struct {
	rpc    pb.ConnectorClient
	health healthpb.HealthClient
	broker *plugin.GRPCBroker

	mu     sync.Mutex
	hostID uint32
	host   *hostServer
}

var _ Connector = (*Client)(nil)

func (c *Client) Describe(ctx context.Context) (*Description, error) {
	d, err := c.rpc.Describe(ctx, &pb.Empty{})
	if err != nil {
		return nil, fromStatus(err)
	}
	return descriptionFromPB(d), nil
}

func (c *Client) Configure(ctx context.Context, cfg Config, host Host) error {
	id := c.serveHost(host)
	_, err := c.rpc.Configure(ctx, &pb.ConfigureRequest{Config: cfg, HostBrokerId: id})
	if err != nil {
		if status.Code(err) == codes.InvalidArgument {
			return configErrorFrom(status.Convert(err).Message())
		}
		return fromStatus(err)
	}
	return nil
}

// serveHost starts the callback server on first use and swaps the Host it
// forwards to afterwards.
func (c *Client) serveHost(host Host) uint32 {
	if host == nil {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.host != nil {
		c.host.set(host)
		return c.hostID
	}
	hs := &hostServer{}
	hs.set(host)
	id := c.broker.NextId()
	go c.broker.AcceptAndServe(id, func(opts []grpc.ServerOption) *grpc.Server {
		s := grpc.NewServer(opts...)
		pb.RegisterHostServer(s, hs)
		return s
	})
	c.host, c.hostID = hs, id
	return id
}

func (c *Client) HandleWebhook(ctx context.Context, req *WebhookRequest) (*WebhookResponse, error) {
	resp, err := c.rpc.HandleWebhook(ctx, webhookRequestToPB(req))
	if err != nil {
		return nil, fromStatus(err)
	}
	return webhookResponseFromPB(resp), nil
}

// Send returns a *SendError for failures the connector reported and a
// *TransportError when the plugin could not be reached or timed out.
func (c *Client) Send(ctx context.Context, msg *OutboundMessage) (*SendResult, error) {
	resp, err := c.rpc.Send(ctx, outboundToPB(msg))
	if err != nil {
		return nil, fromStatus(err)
	}
	if e := resp.GetError(); e != nil {
		return nil, sendErrorFromPB(e)
	}
	return &SendResult{ProviderMessageID: resp.GetProviderMessageId()}, nil
}

func (c *Client) Backfill(ctx context.Context, req *BackfillRequest, sink BackfillSink) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := c.rpc.Backfill(ctx, &pb.BackfillRequest{SinceUnixNano: unixNano(req.Since), Cursor: req.Cursor})
	if err != nil {
		return fromStatus(err)
	}
	for {
		b, err := stream.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fromStatus(err)
		}
		if err := sink.Batch(ctx, eventsFromPB(b.GetEvents()), b.GetCursor(), Progress{Done: b.GetDone(), Total: b.GetTotal(), Message: b.GetMessage()}); err != nil {
			return err
		}
	}
}

func (c *Client) Health(ctx context.Context) error {
	if _, err := c.rpc.Health(ctx, &pb.Empty{}); err != nil {
		return fromStatus(err)
	}
	return nil
}

// Ping checks that the plugin process answers, without running connector
// code or reaching the vendor: it is go-plugin's gRPC health service,
// served by every plugin whatever SDK version it was built with. A
// stopped or wedged process misses it; a vendor outage does not.
func (c *Client) Ping(ctx context.Context) error {
	resp, err := c.health.Check(ctx, &healthpb.HealthCheckRequest{Service: plugin.GRPCServiceName})
	if err != nil {
		return fromStatus(err)
	}
	if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		return &TransportError{Code: "NotServing", Message: "plugin reports " + resp.GetStatus().String()}
	}
	return nil
}

// TransportError means the plugin process could not be reached, crashed
// mid-call or did not answer in time: the request may or may not have been
// handled.
type TransportError struct {
	Code    string
	Message string
}

func (e *TransportError) Error() string {
	return "connector unreachable (" + e.Code + "): " + e.Message
}

// PluginError is an error the connector itself returned.
type PluginError struct{ Message string }

func (e *PluginError) Error() string { return e.Message }

func fromStatus(err error) error {
	st, ok := status.FromError(err)
	if !ok {
		return &TransportError{Code: "unknown", Message: err.Error()}
	}
	switch st.Code() {
	case codes.Unavailable, codes.DeadlineExceeded, codes.Canceled, codes.Aborted:
		return &TransportError{Code: st.Code().String(), Message: st.Message()}
	}
	return &PluginError{Message: st.Message()}
}

func configErrorFrom(msg string) error {
	for i := 0; i+1 < len(msg); i++ {
		if msg[i] == ':' && msg[i+1] == ' ' {
			return &ConfigError{Field: msg[:i], Problem: msg[i+2:]}
		}
	}
	return &ConfigError{Field: "config", Problem: msg}
}

// hostServer serves the Host callbacks in the host process.
type hostServer struct {
	pb.UnimplementedHostServer
	mu   sync.RWMutex
	host Host
}

func (h *hostServer) set(host Host) { h.mu.Lock(); h.host = host; h.mu.Unlock() }
func (h *hostServer) get() Host     { h.mu.RLock(); defer h.mu.RUnlock(); return h.host }

func (h *hostServer) Emit(ctx context.Context, req *pb.EmitRequest) (*pb.Empty, error) {
	if err := h.get().Emit(ctx, eventsFromPB(req.GetEvents())); err != nil {
		return nil, status.Error(codes.Unavailable, err.Error())
	}
	return &pb.Empty{}, nil
}

func (h *hostServer) Log(_ context.Context, req *pb.LogRequest) (*pb.Empty, error) {
	kv := make([]any, len(req.GetKeyvals()))
	for i, v := range req.GetKeyvals() {
		kv[i] = v
	}
	h.get().Log(req.GetLevel(), req.GetMessage(), kv...)
	return &pb.Empty{}, nil
}
