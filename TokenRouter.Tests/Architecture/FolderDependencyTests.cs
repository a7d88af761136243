using Mono.Cecil;
using TokenRouter.Gateway.Forwarding;

namespace TokenRouter.Tests.Architecture;

/// <summary>
/// The gateway's folders (one namespace each) depend on each other in one direction only. Read from the compiled
/// assembly, so every kind of reference counts: signatures, base types, attributes, and the types and members a method
/// body touches.
/// </summary>
public sealed class FolderDependencyTests
{
    private const string Root = "TokenRouter.Gateway";

    [Fact]
    public void The_gateways_folders_have_no_dependency_cycle()
    {
        var graph = FolderGraph();
        var cycles = StronglyConnected(graph).Where(c => c.Count > 1).ToList();

        Assert.True(cycles.Count == 0, "Folder cycles: " + string.Join("; ", cycles.Select(c => Describe(c, graph))));
    }

    [Fact]
    public void Errors_depend_on_no_other_folder()
    {
        var graph = FolderGraph();
        Assert.Empty(graph.GetValueOrDefault("Errors") ?? []);
    }

    [Fact]
    public void Usage_readers_depend_only_on_accounting()
    {
        // Every vendor's adapter and stream code reads usage through them, so they sit below all of it.
        var graph = FolderGraph();
        Assert.Equal("Accounting", Assert.Single(graph["Vendors.UsageReaders"]));
        Assert.Contains("Vendors.UsageReaders", graph["Providers"]);
    }

    [Fact]
    public void The_graph_sees_known_dependencies()
    {
        // Guards the reader itself: an empty graph would pass the cycle test.
        var graph = FolderGraph();
        Assert.Contains("Pipeline", graph["Forwarding"]);
        Assert.Contains("Errors", graph["Pipeline"]);
    }

    private static string Describe(IReadOnlyCollection<string> cycle, Dictionary<string, HashSet<string>> graph) =>
        string.Join(", ", cycle.SelectMany(from => graph[from].Where(cycle.Contains).Select(to => $"{from} → {to}")));

    /// <summary>Folder → the folders it uses, from every type of the gateway assembly (nested and generated types count
    /// for the folder of the type that declares them).</summary>
    private static Dictionary<string, HashSet<string>> FolderGraph()
    {
        using var module = ModuleDefinition.ReadModule(typeof(ChatHandler).Assembly.Location);
        var graph = new Dictionary<string, HashSet<string>>();
        foreach (var type in module.GetTypes())
        {
            if (FolderOf(type) is not { } from) continue;
            var uses = graph.TryGetValue(from, out var set) ? set : graph[from] = [];
            foreach (var used in ReferencedTypes(type))
            {
                if (FolderOf(used) is { } to && to != from) uses.Add(to);
            }
        }
        return graph;
    }

    private static string? FolderOf(TypeReference type)
    {
        while (type.DeclaringType is not null) type = type.DeclaringType;
        var ns = type.Namespace;
        if (ns == Root) return "(root)";
        return ns.StartsWith(Root + ".", StringComparison.Ordinal) ? ns[(Root.Length + 1)..] : null;
    }

    private static IEnumerable<TypeReference> ReferencedTypes(TypeDefinition type)
    {
        if (type.BaseType is not null) yield return type.BaseType;
        foreach (var i in type.Interfaces) yield return i.InterfaceType;
        foreach (var a in type.CustomAttributes) yield return a.AttributeType;
        foreach (var f in type.Fields) yield return f.FieldType;
        foreach (var p in type.Properties) yield return p.PropertyType;
        foreach (var m in type.Methods)
        {
            yield return m.ReturnType;
            foreach (var p in m.Parameters) yield return p.ParameterType;
            foreach (var a in m.CustomAttributes) yield return a.AttributeType;
            if (!m.HasBody) continue;
            foreach (var v in m.Body.Variables) yield return v.VariableType;
            foreach (var instruction in m.Body.Instructions)
            {
                switch (instruction.Operand)
                {
                    case TypeReference t: yield return t; break;
                    case MemberReference member when member.DeclaringType is not null:
                        yield return member.DeclaringType;
                        if (member is MethodReference method)
                        {
                            yield return method.ReturnType;
                            foreach (var p in method.Parameters) yield return p.ParameterType;
                        }
                        else if (member is FieldReference field) yield return field.FieldType;
                        break;
                }
            }
        }
    }

    /// <summary>Tarjan's strongly connected components: a component of more than one folder is a cycle.</summary>
    private static List<List<string>> StronglyConnected(Dictionary<string, HashSet<string>> graph)
    {
        var index = new Dictionary<string, int>();
        var low = new Dictionary<string, int>();
        var stack = new Stack<string>();
        var onStack = new HashSet<string>();
        var result = new List<List<string>>();
        var next = 0;

        void Visit(string v)
        {
            index[v] = low[v] = next++;
            stack.Push(v);
            onStack.Add(v);
            foreach (var w in graph.GetValueOrDefault(v) ?? [])
            {
                if (!index.ContainsKey(w))
                {
                    Visit(w);
                    low[v] = Math.Min(low[v], low[w]);
                }
                else if (onStack.Contains(w)) low[v] = Math.Min(low[v], index[w]);
            }
            if (low[v] != index[v]) return;
            var component = new List<string>();
            string x;
            do
            {
                x = stack.Pop();
                onStack.Remove(x);
                component.Add(x);
            } while (x != v);
            result.Add(component);
        }

        foreach (var v in graph.Keys.ToList()) if (!index.ContainsKey(v)) Visit(v);
        return result;
    }
}
